"""The Penn Treebank (Mikolov's word-level version) as word streams, for the ``word_lm_ptb`` assignment.

Each split is one stream of words: every line's words followed by ``"<eos>"``, lines in file order
(as Zaremba et al.'s reader and pytorch/examples' ``word_language_model`` read it). The files come
through :func:`course_lib.data.fetch` (mirror, cache or canonical URL, checksum verified)::

    words = read_words("train")      # 929,589 words: 887,521 of the text and 42,068 "<eos>"
    words[:3]                        # ['aer', 'banknote', 'berlitz']
"""

from __future__ import annotations

import os
from pathlib import Path

from .wikitext import EOS, read_lines

__all__ = ["SPLITS", "EOS", "COUNTS", "VOCABULARY_SIZE", "split_path", "read_words"]

#: Split name -> the registry's file key (dataset ``"ptb"``).
SPLITS = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
#: Lines and words (without ``<eos>``) of each split, as the data manifest records them.
COUNTS = {"train": (42_068, 887_521), "valid": (3_370, 70_390), "test": (3_761, 78_669)}
#: Distinct words of the training split, ``<eos>`` included.
VOCABULARY_SIZE = 10_000


def split_path(split: str, root: str | os.PathLike | None = None) -> Path:
    """The file of ``split`` ("train", "valid" or "test"): from ``root`` if given (a folder holding
    ``ptb.<split>.txt``), else through :func:`course_lib.data.fetch`."""
    if split not in SPLITS:
        raise ValueError(f"Unknown Penn Treebank split {split!r}: use one of {', '.join(SPLITS)}.")
    if root is None:
        from .data import fetch

        return fetch("ptb", SPLITS[split], progress=False)
    path = Path(root).expanduser() / SPLITS[split]
    if not path.is_file():
        raise FileNotFoundError(f"No {SPLITS[split]} in {root}. Leave root=None to use the course data "
                                "(course_lib.data.fetch('ptb', ...)).")
    return path


def read_words(split: str, root: str | os.PathLike | None = None) -> list[str]:
    """The words of ``split`` as one stream: each line's words, then ``"<eos>"``."""
    return [w for line in read_lines(split_path(split, root)) for w in line]
