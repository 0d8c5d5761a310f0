"""A synthetic class for the similarity checker (tests/test_similarity.py, benchmarks/similarity_throughput.py).

A release notebook with three code answers (``moving_average``, ``word_counts``, ``top_k``: each a
skeleton with a docstring and a few given lines) and two written answers (``parts`` times over, for a
longer assignment), and student notebooks built from it:

- independent students: each answer assembled from alternatives chosen at random per slot (argument
  checks, set-up, several algorithms, return forms, an optional helper before or after the function),
  random variable names and comments; written answers are random sentences, half of them opening with
  the question's own words (boilerplate). Every generated solution is correct (:func:`check_solution`).
- planted copies of a student (:data:`PLANTED`): verbatim, variables renamed, blocks reordered, comments
  changed, or all of these, with the written answers copied (verbatim or lightly edited).
- the blank release.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NAME = "simtoy"
DOCSTRINGS = {
    "moving_average": '    """Averages of every window of w consecutive values of xs, left to right.\n\n'
                      '    Args:\n        xs: a list of numbers.\n        w: the window length (1 <= w <= len(xs)).\n'
                      '    Returns:\n        A list of len(xs) - w + 1 floats.\n    """\n',
    "word_counts": '    """How many times each word occurs in text (words split on whitespace, lower-cased).\n\n'
                   '    Returns:\n        A dict word -> count.\n    """\n',
    "top_k": '    """The k keys of scores with the highest values, highest first (ties: smaller key first).\n\n'
             '    Args:\n        scores: a dict key -> number.\n        k: how many keys to return.\n    """\n',
}
# Code the release gives inside the answer cells (as nbgrader leaves what is outside BEGIN/END SOLUTION).
GIVEN_LINES = {
    "moving_average": "    if not isinstance(xs, (list, tuple)):\n        raise TypeError(f\"xs must be a list, not {type(xs).__name__}\")\n"
                      "    xs = [float(value) for value in xs]\n",
    "word_counts": "    if not isinstance(text, str):\n        raise TypeError(f\"text must be a str, not {type(text).__name__}\")\n",
    "top_k": "    if not isinstance(scores, dict):\n        raise TypeError(f\"scores must be a dict, not {type(scores).__name__}\")\n"
             "    k = int(k)\n",
}
SKELETONS = {q: f"def {q}({args}):\n" + DOCSTRINGS[q] + GIVEN_LINES[q]
             for q, args in [("moving_average", "xs, w"), ("word_counts", "text"), ("top_k", "scores, k")]}
STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"
TESTS = {
    "moving_average": "assert moving_average([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]",
    "word_counts": 'assert word_counts("a B b") == {"a": 1, "b": 2}',
    "top_k": 'assert top_k({"a": 1, "b": 3, "c": 3}, 2) == ["b", "c"]',
}
PROMPTS = {
    "explain_smoothing": "Explain why a moving average smooths a noisy series and what the window length changes.",
    "explain_counter": "Explain when you would count words with a dictionary rather than with a Counter and why.",
}
GIVEN = "import collections\nimport heapq\nimport re\nfrom collections import defaultdict\n\nimport numpy as np"


def _meta(**kw):
    d = {"schema_version": 3, "locked": False, "solution": False, "grade": False}
    d.update(kw)
    return {"nbgrader": d}


def part_id(question: str, part: int) -> str:
    """The grade_id of ``question`` in part ``part`` (an assignment may repeat the questions in parts)."""
    return question if part == 1 else f"{question}_{part}"


def release_notebook(parts: int = 1) -> nbformat.NotebookNode:
    """The student version: code skeletons that raise, written answers to fill in (``parts`` times)."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    cells = [new_markdown_cell("# A toy assignment\nAnswer every question below.", metadata=_meta(grade_id="intro", locked=True)),
             new_code_cell(GIVEN, metadata=_meta(grade_id="imports", locked=True))]
    for part in range(1, parts + 1):
        for q, skel in SKELETONS.items():
            g = part_id(q, part)
            cells.append(new_markdown_cell(f"## {g}\nWrite `{q}`.", metadata=_meta(grade_id=f"about_{g}", locked=True)))
            cells.append(new_code_cell(skel + STUB, metadata=_meta(grade_id=g, solution=True)))
            cells.append(new_code_cell(TESTS[q], metadata=_meta(grade_id=f"test_{g}", grade=True, points=1, locked=True)))
        for q, prompt in PROMPTS.items():
            g = part_id(q, part)
            cells.append(new_markdown_cell(f"**{g}.** {prompt}", metadata=_meta(grade_id=f"prompt_{g}", locked=True)))
            cells.append(new_markdown_cell("YOUR ANSWER HERE", metadata=_meta(grade_id=g, solution=True, grade=True, points=2)))
    nb.cells = cells
    return nb


# ----------------------------------------------------------------------------- code, by construction
# {AVG:expr} is replaced by an average of expr; other {name} fields are variable names.
MOVING = {
    "check": ["", 'if w <= 0:\n    raise ValueError("window must be positive")', 'assert w > 0, "w must be positive"',
              "if w < 1 or w > len(xs):\n    return []", "w = int(w)"],
    "setup": ["{out} = []", "{out} = list()", "{n} = len(xs)\n{out} = []", "{out} = []\n{n} = len(xs) - w + 1"],
    "core": ["for {i} in range(len(xs) - w + 1):\n    {out}.append({AVG:xs[{i}:{i} + w]})",
             "{s} = sum(xs[:w])\n{out}.append({s} / w)\nfor {i} in range(w, len(xs)):\n    {s} += xs[{i}] - xs[{i} - w]\n"
             "    {out}.append({s} / w)",
             "{out} = [{AVG:xs[{i}:{i} + w]} for {i} in range(len(xs) - w + 1)]",
             "{i} = 0\nwhile {i} + w <= len(xs):\n    {win} = xs[{i}:{i} + w]\n    {out}.append({AVG:{win}})\n    {i} += 1",
             "{c} = np.cumsum([0.0] + list(xs))\n{out} = [float({v}) for {v} in ({c}[w:] - {c}[:-w]) / w]",
             "for {i}, _ in enumerate(xs[: len(xs) - w + 1]):\n    {win} = xs[{i}:{i} + w]\n    {total} = 0\n"
             "    for {v} in {win}:\n        {total} = {total} + {v}\n    {out}.append({total} / w)"],
    "ret": ["return {out}", "return list({out})", "{res} = {out}\nreturn {res}", "return [float({v}) for {v} in {out}]"],
}
AVERAGES = ["sum({e}) / w", "sum({e}) / float(w)", "float(np.mean({e}))", "sum({e}) * (1.0 / w)", "{h}({e})"]
HELPERS = ["def {h}(seq):\n    return sum(seq) / len(seq)",
           "def {h}(values):\n    acc = 0.0\n    for x in values:\n        acc += x\n    return acc / len(values)",
           "def {h}(chunk):\n    return float(np.mean(chunk))"]
WORDS = {
    "check": ["", "if not text:\n    return {}", "text = str(text)", "assert isinstance(text, str)"],
    "setup": ["{words} = text.lower().split()", "{words} = [{t}.lower() for {t} in text.split()]",
              '{words} = re.findall(r"\\S+", text.lower())', "{words} = list(map(str.lower, text.split()))",
              "{words} = text.split()\n{words} = [{t}.lower() for {t} in {words}]"],
    "core": ["{counts} = {}\nfor {wd} in {words}:\n    {counts}[{wd}] = {counts}.get({wd}, 0) + 1",
             "{counts} = collections.Counter({words})",
             "{counts} = {}\nfor {wd} in {words}:\n    if {wd} in {counts}:\n        {counts}[{wd}] += 1\n    else:\n"
             "        {counts}[{wd}] = 1",
             "{counts} = defaultdict(int)\nfor {wd} in {words}:\n    {counts}[{wd}] += 1",
             "{counts} = {{{wd}: {words}.count({wd}) for {wd} in set({words})}}",
             "{counts} = {}\nfor {wd} in sorted({words}):\n    {counts}.setdefault({wd}, 0)\n    {counts}[{wd}] += 1"],
    "ret": ["return dict({counts})", "return {counts}", "return {{{kk}: {c} for {kk}, {c} in {counts}.items()}}",
            "{res} = dict({counts})\nreturn {res}"],
}
TOPK = {
    "check": ["", "if k <= 0:\n    return []", "k = min(k, len(scores))", "if not scores:\n    return []", "k = max(0, int(k))"],
    "setup": ["", "{n} = len(scores)", "{items} = list(scores.items())"],
    "core": ["{items} = sorted(scores.items(), key=lambda {p}: (-{p}[1], {p}[0]))\n{out} = [{p}[0] for {p} in {items}[:k]]",
             "{keys} = sorted(scores, key=lambda {kk}: (-scores[{kk}], {kk}))\n{out} = {keys}[:k]",
             "{ranked} = heapq.nsmallest(k, scores.items(), key=lambda {p}: (-{p}[1], {p}[0]))\n"
             "{out} = [{kk} for {kk}, _ in {ranked}]",
             "{left} = dict(scores)\n{out} = []\nwhile {left} and len({out}) < k:\n"
             "    {best} = min({left}, key=lambda {kk}: (-{left}[{kk}], {kk}))\n    {out}.append({best})\n    del {left}[{best}]",
             "{pairs} = [(-{v}, {kk}) for {kk}, {v} in scores.items()]\n{pairs}.sort()\n{out} = [{kk} for _, {kk} in {pairs}[:k]]",
             "{out} = sorted(sorted(scores), key=scores.get, reverse=True)[:k]"],
    "ret": ["return {out}", "return list({out})", "{res} = list({out})\nreturn {res}"],
}
GRAMMARS = {"moving_average": MOVING, "word_counts": WORDS, "top_k": TOPK}
NAMES = ["out", "result", "res", "acc", "vals", "output", "answer", "ans", "collected", "buf", "tmp", "store",
         "i", "j", "idx", "pos", "start", "s", "run", "window", "win", "chunk", "part", "total", "t", "c", "cum",
         "v", "x", "val", "n", "count", "counts", "freq", "table", "tally", "word", "wd", "token", "tok", "words",
         "items", "pairs", "ranked", "left", "rest", "best", "top", "keys", "key", "p", "kv", "entry", "h",
         "mean_of", "avg", "average", "seq_mean", "word_list", "tokens", "histogram", "k2", "cand", "e", "item"]
FIELDS = ["out", "n", "i", "s", "win", "c", "v", "total", "res", "h", "words", "t", "counts", "wd", "kk", "items",
          "p", "keys", "ranked", "left", "best", "pairs"]
COMMENTS = ["loop over the windows", "running total", "start empty", "build the result", "count each word",
            "sort by score", "highest first", "ties by key", "edge case", "the answer", "TODO tidy up",
            "O(n) version", "check the input", "collect", "normalise case", "keep k of them", "done",
            "simple and clear", "see the lecture notes", "uses numpy"]


@dataclass
class Answer:
    """How one student writes one code answer: a choice per slot, names, comments, layout."""

    question: str
    choice: dict[str, int]
    avg: int = 0
    helper: int = -1  # -1: no helper function
    helper_after: bool = False  # the helper defined after the function (reordered)
    swap: bool = False  # the argument check after the set-up (reordered)
    names: dict[str, str] = field(default_factory=dict)
    comment_seed: int = 0
    comment_rate: float = 0.3
    keep_docstring: bool = True


def random_answer(rng: random.Random, question: str) -> Answer:
    g = GRAMMARS[question]
    choice = {slot: rng.randrange(len(alts)) for slot, alts in g.items()}
    helper = rng.randrange(len(HELPERS)) if question == "moving_average" and rng.random() < 0.4 else -1
    avg = rng.randrange(len(AVERAGES) if helper >= 0 else len(AVERAGES) - 1)
    return Answer(question, choice, avg=avg, helper=helper, helper_after=rng.random() < 0.5, swap=False,
                  names=random_names(rng), comment_seed=rng.randrange(10**9), comment_rate=rng.choice([0.0, 0.2, 0.5]),
                  keep_docstring=rng.random() < 0.8)


def random_names(rng: random.Random, avoid: dict[str, str] | None = None) -> dict[str, str]:
    names: dict[str, str] = {}
    for f in FIELDS:
        pool = [x for x in NAMES if x not in names.values() and (not avoid or x != avoid.get(f))]
        names[f] = rng.choice(pool)
    return names


def _indent(block: str, by: str = "    ") -> str:
    return "\n".join(by + line if line.strip() else line for line in block.split("\n"))


def render(a: Answer) -> str:
    """The answer cell's source."""
    g = GRAMMARS[a.question]
    rng = random.Random(a.comment_seed)
    names = a.names

    def fill(text: str) -> str:
        text = re.sub(r"\{AVG:((?:[^{}]|\{\w+\})+)\}", lambda m: AVERAGES[a.avg].replace("{e}", m.group(1)), text)
        return re.sub(r"\{(\w+)\}", lambda m: names.get(m.group(1), m.group(0)), text).replace("{{", "{").replace("}}", "}")

    blocks = [g[slot][a.choice[slot]] for slot in g]
    if a.swap and blocks[0] and blocks[1]:
        blocks[0], blocks[1] = blocks[1], blocks[0]
    lines = []
    for block in blocks:
        if not block:
            continue
        if rng.random() < a.comment_rate:
            lines.append(f"# {rng.choice(COMMENTS)}")
        lines.extend(fill(block).split("\n"))
    body = _indent("\n".join(lines))
    skel = SKELETONS[a.question]
    if not a.keep_docstring:
        skel = skel.replace(DOCSTRINGS[a.question], "")
    if rng.random() < 0.5:
        skel += "    # YOUR CODE HERE\n"
    code = skel + body
    if a.helper >= 0:
        helper = fill(HELPERS[a.helper])
        code = f"{code}\n\n\n{helper}" if a.helper_after else f"{helper}\n\n\n{code}"
    return code


def check_solution(sources: dict[str, str]) -> None:
    """Run a student's three answers and the release's tests on them (every generated answer is correct)."""
    env: dict = {}
    exec(GIVEN, env)
    for gid, src in sources.items():
        q = re.sub(r"_\d+$", "", gid)
        if q in SKELETONS:
            exec(src, env)
            exec(TESTS[q], env)
    assert env["top_k"]({"x": 2, "y": 2, "z": 1}, 5) == ["x", "y", "z"]
    assert env["word_counts"]("") == {}


# ----------------------------------------------------------------------------- written answers
VOCAB = ("average window noise smooth values series mean sum neighbouring points spikes trend signal random "
         "wider narrower lag delay shape detail sharp flat peaks each step previous next estimate variance "
         "cancel out fluctuation short long term change responds slowly quickly data sample filter kernel weights "
         "uniform equal local global dictionary counter keys count increment default missing import library "
         "readable explicit faster slower memory order insertion sorted frequency tally loop method get setdefault "
         "standard module subclass most common convenient plain manual clearer hidden behaviour zero new word "
         "words text lowercase split tokens whitespace result return simple").split()
FILLERS = "the a of and so it this that is are because when which then more less with by to in".split()


def random_text(rng: random.Random, prompt: str) -> str:
    sentences = []
    for _ in range(rng.randint(3, 5)):
        words = [rng.choice(VOCAB if rng.random() < 0.7 else FILLERS) for _ in range(rng.randint(8, 15))]
        sentences.append(" ".join(words).capitalize() + ".")
    if rng.random() < 0.5:  # restates the question first (the release's own words)
        sentences.insert(0, prompt)
    return " ".join(sentences)


def edit_text(rng: random.Random, text: str, reorder: bool) -> str:
    """A light edit: one word in ten replaced, sentences maybe reordered."""
    sentences = [s for s in re.split(r"(?<=\.)\s+", text) if s]
    if reorder:
        rng.shuffle(sentences)
    out = []
    for s in sentences:
        words = s.split(" ")
        for i in range(len(words)):
            if rng.random() < 0.1:
                words[i] = rng.choice(VOCAB)
        out.append(" ".join(words))
    return " ".join(out)


# ----------------------------------------------------------------------------- students
@dataclass
class Student:
    student_id: str
    code: dict[str, Answer]
    text: dict[str, str]
    blank: bool = False

    def sources(self) -> dict[str, str]:
        if self.blank:
            return {}
        return {**{q: render(a) for q, a in self.code.items()}, **self.text}


def independent_student(rng: random.Random, student_id: str, parts: int = 1) -> Student:
    ps = range(1, parts + 1)
    return Student(student_id, {part_id(q, p): random_answer(rng, q) for p in ps for q in GRAMMARS},
                   {part_id(q, p): random_text(rng, prompt) for p in ps for q, prompt in PROMPTS.items()})


# How each planted copy transforms its source (``copy_of``): code and written answers.
PLANTED = {
    "copy_verbatim": ("verbatim", "verbatim"),
    "copy_renamed": ("renamed", "verbatim"),
    "copy_reordered": ("reordered", "reordered"),
    "copy_comments": ("comments", "edited"),
    "copy_everything": ("renamed+reordered+comments", "reordered"),
    "copy_ring_1": ("renamed", "edited"),
    "copy_ring_2": ("comments", "verbatim"),
}


def planted_copy(rng: random.Random, src: Student, student_id: str, how: str, text_how: str) -> Student:
    code = {}
    for q, a in src.code.items():
        b = replace(a, names=dict(a.names), choice=dict(a.choice))
        if "renamed" in how:
            b.names = random_names(rng, avoid=a.names)
        if "reordered" in how:
            b.swap = not a.swap
            if b.helper < 0 and a.question == "moving_average":  # give it something to move
                b.helper, b.avg = 0, len(AVERAGES) - 1
                a.helper, a.avg = 0, len(AVERAGES) - 1  # the source defines the same helper, before
            b.helper_after = not a.helper_after
        if "comments" in how:
            b.comment_seed, b.comment_rate = rng.randrange(10**9), 0.6
        code[q] = b
    if text_how == "verbatim":
        text = dict(src.text)
    else:
        text = {q: edit_text(rng, t, reorder=text_how == "reordered") for q, t in src.text.items()}
    return Student(student_id, code, text)


def make_class(n: int = 40, seed: int = 0, planted: bool = True, blanks: int = 2,
               parts: int = 1) -> tuple[list[Student], dict[str, str]]:
    """``n`` independent students ``s00``..., the planted copies and ``blanks`` blank releases; and
    ``{copy: its source}`` for the planted pairs (the ring's two copies share one source)."""
    rng = random.Random(seed)
    width = max(2, len(str(n - 1)))
    students = [independent_student(rng, f"s{i:0{width}d}", parts) for i in range(n)]
    sources: dict[str, str] = {}
    if planted:
        for k, (cid, (how, text_how)) in enumerate(PLANTED.items()):
            src = students[3 * k + 1] if not cid.startswith("copy_ring") else students[30 % n]
            students.append(planted_copy(rng, src, cid, how, text_how))
            sources[cid] = src.student_id
    students += [Student(f"blank{i}", {}, {}, blank=True) for i in range(1, blanks + 1)]
    return students, sources


def student_notebook(release: nbformat.NotebookNode, student: Student, pad: bytes = b"") -> nbformat.NotebookNode:
    """The release with the student's answers in its answer cells (``pad``: a PNG output to make it as
    heavy as a run notebook)."""
    import base64
    import copy

    nb = copy.deepcopy(release)
    answers = student.sources()
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    if pad:
        out = nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(pad).decode("ascii")})
        nb.cells[1].outputs = [out]
    return nb


def write_class(folder: Path, students: list[Student], *, pad: bytes = b"", parts: int = 1) -> Path:
    """``folder/release.ipynb`` and ``folder/subs/<student>/simtoy.ipynb``; returns the release's path."""
    folder.mkdir(parents=True, exist_ok=True)
    release = release_notebook(parts)
    rel = folder / f"{NAME}.ipynb"
    nbformat.write(release, rel)
    for st in students:
        d = folder / "subs" / st.student_id
        d.mkdir(parents=True, exist_ok=True)
        nbformat.write(student_notebook(release, st, pad), d / f"{NAME}.ipynb")
    return rel
