"""A reusable training loop for language models: progress bars, history, best checkpoint.

Batches are dicts as made by :func:`course_lib.text.collate_char_lm`::

    {"inputs": (B, T) long, "targets": (B, T) long, "lengths": (B,) long, "mask": (B, T) float}

and models are called as ``model(inputs, lengths) -> logits (B, T, V)``.

Typical use::

    history = fit(model, train_loader, dev_loader,
                  optimizer=torch.optim.Adam(model.parameters(), lr=1e-3), epochs=10)
    history.best_epoch, history.best_dev_ppl   # the model now holds that epoch's weights
    plot_history(history)                      # History is a pandas DataFrame

Perplexity is ``exp(loss)`` where loss is the mean negative log-likelihood per real token.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .files import atomic_torch_save

__all__ = ["History", "fit", "evaluate", "train_epoch", "run_updates", "EpochTotals", "char_lm_token_nll", "masked_sum", "to_device", "perplexity", "token_losses", "HISTORY_COLUMNS"]

HISTORY_COLUMNS = ["epoch", "train_loss", "train_ppl", "dev_loss", "dev_ppl", "seconds", "is_best"]


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood: logits (B, T, V), targets (B, T) -> losses (B, T)."""
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T), reduction="none").view(B, T)


def perplexity(loss: float) -> float:
    """``exp(loss)``, or ``inf`` when that overflows (and ``nan`` for ``nan``)."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


class History(pd.DataFrame):
    """The per-epoch record of :func:`fit`: a pandas DataFrame with one row per epoch.

    Columns: ``epoch`` (1-based), ``train_loss``, ``train_ppl``, ``dev_loss``, ``dev_ppl``,
    ``seconds`` (wall time of that epoch, dev evaluation included) and ``is_best`` (True on the
    single epoch with the lowest dev loss, the one whose weights :func:`fit` restored; without a
    dev loader, the lowest train loss).

    Extra read-only properties, computed from the columns (so they survive copies and
    pickling): ``best_epoch``, ``best_dev_loss``, ``best_dev_ppl``, ``total_seconds``.
    Whatever the ``callback`` returned (when not ``None``) is kept in
    ``history.attrs["callback_results"]`` as ``{epoch: value}`` (also ``history.callback_results``).
    Operations that build new frames (slicing, ``.copy()``) return plain DataFrames.
    """

    @property
    def _best_row(self):
        if len(self) == 0:
            raise ValueError("empty history: no epoch was run")
        if "is_best" in self.columns and self["is_best"].any():
            return self.loc[self["is_best"].astype(bool)].iloc[0]
        key = "dev_loss" if self["dev_loss"].notna().any() else "train_loss"
        return self.loc[self[key].idxmin()]

    @property
    def best_epoch(self) -> int:
        return int(self._best_row["epoch"])

    @property
    def best_dev_loss(self) -> float:
        return float(self._best_row["dev_loss"])

    @property
    def best_dev_ppl(self) -> float:
        return float(self._best_row["dev_ppl"])

    @property
    def total_seconds(self) -> float:
        return float(self["seconds"].sum())

    @property
    def callback_results(self) -> dict:
        return dict(self.attrs.get("callback_results", {}))


def to_device(batch: Mapping, device: torch.device) -> dict:
    """Move every tensor of a dict batch to ``device`` (non-blocking; other values unchanged)."""
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def char_lm_token_nll(model: nn.Module) -> Callable[[Mapping], torch.Tensor]:
    """The per-token NLL function of a character LM batch: ``model(inputs, lengths)`` -> logits,
    then :func:`token_losses` against ``targets`` (B, T)."""

    def token_nll(batch: Mapping) -> torch.Tensor:
        return token_losses(model(batch["inputs"], batch["lengths"]).float(), batch["targets"])

    return token_nll


def evaluate(
    model: nn.Module,
    loader,
    *,
    device: torch.device | str | None = None,
    token_nll: Callable[[Mapping], torch.Tensor] | None = None,
    acc_dtype: torch.dtype = torch.float32,
) -> tuple[float, int]:
    """Mean negative log-likelihood per real token over ``loader``, and the token count.

    ``sum(token_nll(batch) * mask) / sum(mask)`` over the whole loader, in eval mode and without
    gradients (the model's training mode is restored). One device sync at the end.

    ``token_nll(batch) -> (B, T)`` is the model's forward as a function of a batch (already on
    ``device``), returning each token's NLL; the default is :func:`char_lm_token_nll` (batches of
    ``inputs``, ``targets``, ``lengths``). Every batch has a ``mask`` (B, T) of real tokens.
    ``acc_dtype``: the dtype of the running sums (float64 for millions of tokens).
    """
    device = torch.device(device) if device is not None else _model_device(model)
    token_nll = token_nll or char_lm_token_nll(model)
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=acc_dtype, device=device)
    count = torch.zeros((), dtype=acc_dtype, device=device)
    try:
        with torch.no_grad():
            for batch in loader:
                batch = to_device(batch, device)
                total += masked_sum(token_nll(batch), batch["mask"]).to(acc_dtype)
                count += batch["mask"].to(acc_dtype).sum()
    finally:
        model.train(was_training)
    n = int(count.item())
    return (float(total.item()) / n if n else float("nan")), n


def masked_sum(token_nll: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(token_nll * mask)`` in float32, without gradients: the NLL of the real tokens."""
    return (token_nll.detach().float() * mask.float()).sum()


@dataclass
class EpochTotals:
    """What :func:`train_epoch` measured, as device tensors (read them once per epoch).

    ``nll_sum``: summed per-token NLL over the real tokens; ``tokens``: real tokens;
    ``weighted_loss``: sum over batches of the training loss times the batch's real tokens;
    ``loss_sum``: sum of the training losses; ``steps``: optimizer steps.
    """

    nll_sum: torch.Tensor
    tokens: torch.Tensor
    weighted_loss: torch.Tensor
    loss_sum: torch.Tensor
    steps: int = 0

    @staticmethod
    def _mean(num: torch.Tensor, den: float) -> float:
        return float(num.item()) / den if den else float("nan")

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.item())

    def token_nll(self) -> float:
        """Mean NLL per real token (the perplexity's loss)."""
        return self._mean(self.nll_sum, float(self.tokens.item()))

    def token_weighted_loss(self) -> float:
        """Token-weighted mean of the training losses."""
        return self._mean(self.weighted_loss, float(self.tokens.item()))

    def mean_loss(self) -> float:
        """Mean of the training losses over the steps."""
        return self._mean(self.loss_sum, self.steps)


def train_epoch(
    model: nn.Module,
    batches,
    optimizer: torch.optim.Optimizer,
    step: Callable[[Mapping], tuple[torch.Tensor, torch.Tensor]],
    *,
    device: torch.device,
    grad_clip: float | None = None,
    acc_dtype: torch.dtype = torch.float32,
    on_step: Callable[[int], object] | None = None,
    postfix: Callable[[EpochTotals], dict] | None = None,
) -> EpochTotals:
    """One training epoch over ``batches``; returns its :class:`EpochTotals`.

    Per batch (moved to ``device``): ``loss, token_nll = step(batch)`` (``step`` is the model's
    forward and training loss as a function of a batch: ``loss`` the scalar to minimize,
    ``token_nll`` (B, T) each token's NLL), then ``zero_grad``, ``backward``, optional
    gradient-norm clipping at ``grad_clip``, ``optimizer.step()`` and ``on_step(step_index)``.
    The sums stay on the device, in ``acc_dtype``: the loop never waits for the GPU. With
    ``postfix``, a progress bar passed as ``batches`` shows ``postfix(totals)`` every 50 steps.
    """
    model.train()

    def update(batch: Mapping) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loss, token_nll = step(batch)
        nll_sum = masked_sum(token_nll, batch["mask"])
        del token_nll  # (B, T) or its graph: freed before the backward pass and the next step
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        return loss, nll_sum, batch["mask"].sum()

    return run_updates(batches, update, device=device, acc_dtype=acc_dtype, on_step=on_step, postfix=postfix)


def run_updates(
    batches,
    update: Callable[[Mapping], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    *,
    device: torch.device,
    acc_dtype: torch.dtype = torch.float32,
    on_step: Callable[[int], object] | None = None,
    postfix: Callable[[EpochTotals], dict] | None = None,
) -> EpochTotals:
    """The loop of a training epoch where ``update(batch)`` makes the whole optimizer step itself.

    ``update(batch) -> (loss, nll_sum, n_tokens)``: the training loss it minimized, the summed NLL
    of the batch's real tokens and their number (tensors). :func:`train_epoch` is this loop with the
    usual forward / backward / clip / step; a graded training step that also carries state (the
    hidden state of truncated backpropagation through time) is passed here directly. The sums stay
    on ``device`` in ``acc_dtype``; ``on_step`` and ``postfix`` as in :func:`train_epoch`.
    """
    zero = lambda: torch.zeros((), dtype=acc_dtype, device=device)  # noqa: E731
    totals = EpochTotals(zero(), zero(), zero(), zero())
    for index, batch in enumerate(batches):
        loss, nll_sum, n_tokens = update(to_device(batch, device))
        with torch.no_grad():
            if isinstance(n_tokens, torch.Tensor):
                n_tokens = n_tokens.to(acc_dtype)
            else:  # a fill on the device: no host-to-device copy, so no sync per step
                n_tokens = torch.full((), float(n_tokens), dtype=acc_dtype, device=device)
            loss = loss.detach().to(acc_dtype)
            totals.nll_sum += nll_sum.detach().to(acc_dtype)
            totals.tokens += n_tokens
            totals.weighted_loss += loss * n_tokens
            totals.loss_sum += loss
        totals.steps += 1
        if postfix is not None and index % 50 == 49 and hasattr(batches, "set_postfix"):
            batches.set_postfix(**postfix(totals), refresh=False)  # an occasional sync, for display only
        if on_step is not None:
            on_step(index)
    return totals


def _state_copy(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _make_tqdm(progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm


# Most of fit is its docstring (the contract the notebooks rely on); the loop itself is train_epoch,
# evaluate and the best-epoch bookkeeping.
def fit(
    model: nn.Module,
    train_loader,
    dev_loader=None,
    *,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device | str | None = None,
    callback: Callable[[int, nn.Module, dict], object] | None = None,
    callback_model: str = "current",
    checkpoint_path: str | os.PathLike | None = None,
    progress: bool = True,
    grad_clip: float | None = None,
    desc: str | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs and return its :class:`History`.

    Per batch: tensors go to ``device`` (default: where the model's parameters are), then
    ``logits = model(inputs, lengths)``, ``loss = loss_fn(token_losses(logits, targets), mask)``,
    ``backward``, optional gradient-norm clipping at ``grad_clip``, ``optimizer.step()``.

    - ``train_loss``: the token-weighted mean over the epoch of the ``loss_fn`` values (for
      a masked mean, the mean training NLL per token, dropout on). It is accumulated on the
      device and read once per epoch, so the loop never waits for the GPU on each step.
    - ``dev_loss``: :func:`evaluate` on ``dev_loader`` (sum of masked token NLL / number of real
      tokens, eval mode, no gradients), computed here independently of ``loss_fn``.
    - The best epoch (lowest dev loss) is kept: a copy of its ``state_dict`` in memory and, with
      ``checkpoint_path``, on disk (``torch.save(state_dict)``, written atomically). Its weights
      are loaded back into ``model`` at the end.
    - ``callback(epoch, model, row)`` runs after each epoch; ``row`` is that epoch's history row
      as a dict (its ``is_best`` means "best so far"). With ``callback_model="best"`` the callback
      sees the model holding the best weights so far (the current weights are put back after
      it). A non-``None`` return value is kept in ``history.attrs["callback_results"]``.
    - ``progress``: tqdm bars (epochs, and batches with ``leave=False``); ``False`` for none.
    """
    if callback_model not in ("current", "best"):
        raise ValueError(f"callback_model must be 'current' or 'best', got {callback_model!r}")
    if device is None:
        device = _model_device(model)
    device = torch.device(device)
    model.to(device)
    tqdm = _make_tqdm(progress)

    def step(batch):
        losses = token_losses(model(batch["inputs"], batch["lengths"]), batch["targets"])
        return loss_fn(losses, batch["mask"]), losses

    rows: list[dict] = []
    callback_results: dict = {}
    best_loss = math.inf
    best_state: dict | None = None
    best_epoch = None

    epoch_iter = range(1, epochs + 1)
    epoch_bar = tqdm(epoch_iter, desc=desc or "epochs", unit="epoch") if tqdm else None
    try:
        for epoch in epoch_bar if epoch_bar is not None else epoch_iter:
            start = time.perf_counter()
            batches = train_loader
            if tqdm:
                try:
                    total = len(train_loader)
                except TypeError:
                    total = None
                batches = tqdm(train_loader, desc=f"epoch {epoch}", total=total, leave=False, unit="batch")
            totals = train_epoch(model, batches, optimizer, step, device=device, grad_clip=grad_clip,
                                 postfix=lambda t: {"loss": f"{t.token_weighted_loss():.3f}"})
            if tqdm:
                batches.close()
            train_loss = totals.token_weighted_loss()
            if dev_loader is not None:
                dev_loss, _ = evaluate(model, dev_loader, device=device)
            else:
                dev_loss = float("nan")
            key = dev_loss if dev_loader is not None else train_loss
            is_best = key < best_loss  # NaN never counts as an improvement
            if is_best:
                best_loss, best_epoch = key, epoch
                best_state = _state_copy(model)
                if checkpoint_path is not None:
                    atomic_torch_save(best_state, checkpoint_path)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_ppl": perplexity(train_loss),
                "dev_loss": dev_loss,
                "dev_ppl": perplexity(dev_loss),
                "seconds": time.perf_counter() - start,
                "is_best": bool(is_best),
            }
            rows.append(row)
            if epoch_bar is not None:
                epoch_bar.set_postfix(
                    train_ppl=f"{row['train_ppl']:.3f}", dev_ppl=f"{row['dev_ppl']:.3f}", best=best_epoch
                )
            if callback is not None:
                result = _run_callback(callback, callback_model, epoch, model, dict(row), best_state, is_best)
                if result is not None:
                    callback_results[epoch] = result
    finally:
        if epoch_bar is not None:
            epoch_bar.close()

    if best_state is not None:
        model.load_state_dict(best_state)
    history = History(rows, columns=HISTORY_COLUMNS)
    if len(history):
        history["is_best"] = history["epoch"] == best_epoch
    history.attrs["callback_results"] = callback_results
    return history


def _run_callback(callback, callback_model, epoch, model, row, best_state, is_best):
    if callback_model == "current" or is_best or best_state is None:
        return callback(epoch, model, row)
    current = _state_copy(model)
    model.load_state_dict(best_state)
    try:
        return callback(epoch, model, row)
    finally:
        model.load_state_dict(current)
