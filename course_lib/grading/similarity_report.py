"""The similarity report of :func:`.similarity.compare_submissions`: CSV files and one HTML page.

Files in the output folder (``course similarity`` default: ``WORKDIR/<assignment>/similarity/``):

- ``pairs.csv``: one row per pair whose overall score reaches ``min_score``, the most similar first:
  ``rank, student_a, student_b, safe_id_a, safe_id_b, score, code, written, shared``, then each
  question's score (a column named by its grade_id) and ``<grade_id> shared`` (fingerprints in common);
- ``submissions.csv``: one row per submission folder: ``status`` (ok, or why it was not compared:
  missing, corrupt, invalid_name, error), ``message``, the fingerprints compared, its overall cluster;
- ``clusters.csv``: groups of submissions that share an answer (overall, and per question);
- ``report.html`` (``templates/similarity.html.j2``): the same, with the most similar pairs side by side,
  question by question, the code or text they share highlighted; it opens with
  :data:`.similarity.DISCLAIMER` (evidence for a human to review, not a verdict).
"""

from __future__ import annotations

import functools
import html
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_write_text
from .similarity import DISCLAIMER, OVERALL, CodePrint, SimilarityResult, code_print, read_answers, text_print

MARK_OPEN, MARK_CLOSE = "<mark>", "</mark>"
_STAND_INS = frozenset('VFOPS"')  # what copydetect's filter writes for a name, a class, a string...


def write_report(result: SimilarityResult, out: Path) -> dict[str, Path]:
    """Write ``pairs.csv``, ``submissions.csv``, ``clusters.csv`` and ``report.html`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"pairs": out / "pairs.csv", "submissions": out / "submissions.csv", "clusters": out / "clusters.csv",
             "html": out / "report.html"}
    atomic_write_text(paths["pairs"], pairs_table(result).to_csv(index=False, float_format="%.4f"))
    atomic_write_text(paths["submissions"], submissions_table(result).to_csv(index=False))
    atomic_write_text(paths["clusters"], clusters_table(result).to_csv(index=False, float_format="%.4f"))
    atomic_write_text(paths["html"], report_html(result))
    return paths


def pairs_table(result: SimilarityResult) -> pd.DataFrame:
    listed = result.listed()
    return pd.concat([pd.DataFrame({"rank": np.arange(1, len(listed) + 1)}), listed.reset_index(drop=True)], axis=1)


def submissions_table(result: SimilarityResult) -> pd.DataFrame:
    cluster_of = {}
    for i, c in enumerate((c for c in result.clusters if c.question == OVERALL), start=1):
        for m in c.members:
            cluster_of[m] = i
    return pd.DataFrame([{"student_id": r.student_id, "safe_id": r.safe_id, "status": r.status, "message": r.message,
                          "code_fingerprints": r.code_fingerprints, "written_fingerprints": r.written_fingerprints,
                          "cluster": cluster_of.get(r.student_id, "")} for r in result.rows],
                        columns=["student_id", "safe_id", "status", "message", "code_fingerprints",
                                 "written_fingerprints", "cluster"])


def clusters_table(result: SimilarityResult) -> pd.DataFrame:
    rows, number = [], {}
    for c in result.clusters:
        number[c.question] = number.get(c.question, 0) + 1
        rows.append({"question": c.question, "cluster": number[c.question], "size": len(c.members), "score": c.score,
                     "members": "; ".join(c.members)})
    return pd.DataFrame(rows, columns=["question", "cluster", "size", "score", "members"])


# ----------------------------------------------------------------------------- highlighting
def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def mark_spans(text: str, spans: list[tuple[int, int]], given: list[tuple[int, int]] = ()) -> str:
    """``text`` as HTML (every piece escaped): ``<mark>`` around ``spans`` (what a pair shares), and
    ``<span class="given">`` around ``given`` (lines of the release's own cell, never marked)."""
    cuts = sorted({0, len(text), *(x for se in [*spans, *given] for x in se if 0 <= x <= len(text))})
    marked, gave = _merge(list(spans)), _merge(list(given))

    def inside(pos, runs):
        return any(s <= pos < e for s, e in runs)

    runs: list[list] = []  # [kind, start, end], neighbours of one kind joined
    for a, b in zip(cuts, cuts[1:], strict=False):
        kind = "given" if inside(a, gave) else "mark" if inside(a, marked) else ""
        if kind == "mark" and not text[a:b].strip() and not (runs and runs[-1][0] == "mark"):
            kind = ""  # no highlight starts with blank space (a line break after a given line)
        if runs and runs[-1][0] == kind:
            runs[-1][2] = b
        else:
            runs.append([kind, a, b])
    parts = []
    for kind, a, b in runs:
        piece = html.escape(text[a:b])
        parts.append(f'<span class="given">{piece}</span>' if kind == "given"
                     else f"{MARK_OPEN}{piece}{MARK_CLOSE}" if kind == "mark" else piece)
    return "".join(parts)


def given_lines(answer: str, release_cell: str) -> list[tuple[int, int]]:
    """The spans of ``answer``'s lines that are lines of the release's cell (the skeleton, the docstring,
    the prompt): shown as given, never as shared."""
    lines = {ln.strip() for ln in release_cell.splitlines() if ln.strip()}
    out, at = [], 0
    for ln in answer.splitlines(keepends=True):
        if ln.strip() and ln.strip() in lines:
            out.append((at, at + len(ln.rstrip("\r\n"))))
        at += len(ln)
    return out


@functools.lru_cache(maxsize=2048)
def _code_print(source: str, settings) -> CodePrint:
    return code_print(source, settings)  # a report asks for the same answers again and again


@functools.lru_cache(maxsize=2048)
def filtered_map(source: str, filtered: str) -> tuple[np.ndarray, np.ndarray] | None:
    """For each character of ``filtered`` (copydetect's filtered form of ``source``), the span of ``source``
    of the token it comes from (a name's ``V``: the whole name); None if this walk over the same pygments
    tokens does not give copydetect's result."""
    from pygments import lexers, token

    variable_tokens = {token.Name, token.Name.Variable, token.Name.Attribute}
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for pos, ttype, text in lexers.get_lexer_by_name("python").get_tokens_unprocessed(source):
        if (ttype in variable_tokens or ttype in token.Name.Function or ttype in token.Name.Class
                or ttype in (token.Comment.Preproc, token.Comment.Hashbang)):
            emit = [("x", pos, pos + len(text))]
        elif ttype in token.Text or ttype in token.Comment:
            emit = []
        elif ttype in token.Literal.String:
            emit = [("x", pos, pos + len(text))]
        else:  # kept as it is: each character stands for the whole token (a highlight never cuts a word)
            emit = [(ch, pos, pos + len(text)) for ch in text]
        for ch, s, e in emit:
            out.append(ch)
            starts.append(s)
            ends.append(e)
    if len(out) != len(filtered) or any(o != f and not (o == "x" and f in _STAND_INS) for o, f in zip(out, filtered, strict=True)):
        return None
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


def code_spans(source: str, shared: np.ndarray, settings) -> list[tuple[int, int]]:
    """The spans of ``source`` covered by its fingerprints among ``shared``: copydetect's copied slices of
    the filtered code, mapped back to the source token by token (:func:`filtered_map`; copydetect's own
    ``offsets`` where that walk disagrees with it)."""
    from copydetect.utils import get_copied_slices

    p = _code_print(source, settings)
    pos = p.idx[np.isin(p.hashes, shared)]
    if not len(pos):
        return []
    slices = get_copied_slices(pos, settings.k).astype(np.int64)
    fmap = filtered_map(source, p.filtered)
    if fmap is not None:
        starts, ends = fmap
        return [(int(starts[s]), int(ends[e - 1])) for s, e in zip(slices[0], slices[1], strict=True) if e > s]
    if len(p.offsets):
        slices = slices + p.offsets[:, 1][np.clip(np.searchsorted(p.offsets[:, 0], slices), 0, len(p.offsets) - 1)]
    return [(int(s), int(min(e, len(source)))) for s, e in zip(slices[0], slices[1], strict=True)]


def text_spans(text: str, shared: np.ndarray, settings) -> list[tuple[int, int]]:
    """The spans of ``text`` covered by its word n-grams among ``shared``."""
    hashes, spans = text_print(text, settings)
    return [spans[i] for i in np.flatnonzero(np.isin(hashes, shared))]


def highlight_pair(a: str, b: str, kind: str, ignored: np.ndarray, settings, given: str = "") -> tuple[str, str, int]:
    """Both answers as HTML, what they share (beyond the ``ignored`` fingerprints) marked, the lines of
    the release's cell ``given`` shown as such; and how many fingerprints they share."""
    if kind == "code":
        ha, hb = _code_print(a, settings).hashes, _code_print(b, settings).hashes
        spans = code_spans
    else:
        ha, hb = text_print(a, settings)[0], text_print(b, settings)[0]
        spans = text_spans
    shared = np.setdiff1d(np.intersect1d(ha, hb), ignored)
    return (mark_spans(a, spans(a, shared, settings), given_lines(a, given)),
            mark_spans(b, spans(b, shared, settings), given_lines(b, given)), len(shared))


def pair_details(result: SimilarityResult, pair: pd.Series, answers: dict) -> list[dict]:
    """The questions on which ``pair`` shares fingerprints, its highest score first, each answer as HTML."""
    rows = {r.safe_id: r for r in result.compared}
    if None not in answers:
        answers[None] = read_answers(result.release)  # the release's own cells

    def answers_of(sid):
        if sid not in answers:
            try:
                answers[sid] = read_answers(rows[sid].notebook)
            except Exception:  # it was read a moment ago; if it changed since, show nothing rather than fail
                answers[sid] = {}
        return answers[sid]

    a, b = answers_of(pair["safe_id_a"]), answers_of(pair["safe_id_b"])
    out = []
    for q in result.questions:
        if int(pair[f"{q.grade_id} shared"]) == 0:
            continue
        left, right, _ = highlight_pair(a.get(q.grade_id, ""), b.get(q.grade_id, ""), q.kind,
                                        result.ignored[q.grade_id], result.settings, answers[None].get(q.grade_id, ""))
        out.append({"grade_id": q.grade_id, "kind": q.kind, "score": float(pair[q.grade_id]),
                    "shared": int(pair[f"{q.grade_id} shared"]), "left": left, "right": right})
    return sorted(out, key=lambda d: -d["score"])


# ----------------------------------------------------------------------------- the page
@functools.lru_cache(maxsize=1)
def _template():
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(loader=jinja2.PackageLoader("course_lib.grading", "templates"),
                             autoescape=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["pct"] = lambda value: f"{100 * float(value):.0f}%"
    env.filters["html"] = Markup  # only for strings built by mark_spans (every piece of text escaped)
    return env.get_template("similarity.html.j2")


def report_html(result: SimilarityResult) -> str:
    s = result.settings
    listed = result.listed()
    answers: dict = {}
    top = []
    for rank, (_, pair) in enumerate(listed.head(s.top).iterrows(), start=1):
        top.append({"rank": rank, "pair": pair.to_dict(), "questions": pair_details(result, pair, answers)})
    problems = [r for r in result.rows if r.status != "ok"]
    notes = [r for r in result.compared if r.message]
    clusters = {OVERALL: [c for c in result.clusters if c.question == OVERALL],
                "questions": [c for c in result.clusters if c.question != OVERALL]}
    return _template().render(
        r=result, s=s, stats=result.stats, disclaimer=DISCLAIMER, listed=listed.head(500).to_dict("records"),
        more=max(0, len(listed) - 500), top=top, problems=problems, notes=notes, clusters=clusters,
        kinds={q.grade_id: q.kind for q in result.questions})


def summary_lines(result: SimilarityResult, paths: dict[str, Path] | None = None, top: int = 10) -> list[str]:
    """What ``course similarity`` prints: counts, the most similar pairs, the submissions not compared,
    the disclaimer and where the files are."""
    st, s = result.stats, result.settings
    lines = [f"{st['compared']} of {st['submissions']} submissions compared in {st['seconds']:.1f} s ({st['backend']}); "
             f"{st['candidate_pairs']} of {st['all_pairs']} pairs share a fingerprint, {st['listed_pairs']} reach "
             f"{s.min_score:.0%}"]
    listed = result.listed().head(top)
    if len(listed):
        table = listed[["student_a", "student_b", "score", "code", "written"]].copy()
        for c in ("score", "code", "written"):
            table[c] = [f"{v:.0%}" for v in table[c]]
        table.index = range(1, len(table) + 1)
        lines += ["", f"Most similar pairs (of {len(result.listed())} listed):", table.to_string()]
    problems = [r for r in result.rows if r.status != "ok"]
    if problems:
        lines += ["", f"{len(problems)} submission(s) not compared:"]
        lines += [f"  {r.student_id}: {r.status}: {r.message}" for r in problems]
    lines += ["", DISCLAIMER]
    if paths:
        lines += ["", f"report: {paths['html']}", f"tables: {paths['pairs']}, {paths['submissions'].name}, "
                                                 f"{paths['clusters'].name}"]
    return lines


def demo_lines(name: str, release: Path, submissions: Path, out: Path) -> list[str]:
    """``course demo``'s similarity step: the report for an assignment's example submissions. Every
    example is an edit of the one reference solution, so every fingerprint is kept (``common=1``: the
    default would ignore what most of them share, nearly everything) and every pair looks alike."""
    from .similarity import Settings, compare_submissions

    result = compare_submissions(release, submissions, name=name, settings=Settings(common=1.0), workers=1,
                                 log=lambda *a: None)
    paths = write_report(result, out)
    paired = set(result.pairs["student_a"]) | set(result.pairs["student_b"])
    alone = [r.student_id for r in result.compared if r.student_id not in paired]
    return [f"Similarity of {name}'s example submissions (all edits of the reference solution: they should look alike):",
            *summary_lines(result, paths, top=5),
            f"sharing nothing beyond the release with any other: {', '.join(alone) if alone else 'none'}"]
