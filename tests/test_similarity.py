"""course similarity: planted copies above every independent pair, the release's boilerplate worth nothing,
the index equal to a full pairwise comparison, every folder a row, the CSV and HTML report, local
processes and Dask giving the same result, the command line."""

from __future__ import annotations

import html
import itertools
import random
import re
import shutil
from collections import Counter
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import similarity_class as sc

from course_lib.grading import cli, similarity
from course_lib.grading.similarity import (
    DISCLAIMER,
    Settings,
    compare_submissions,
    fingerprints,
    kgram_hashes,
    questions_of,
    read_answers,
)
from course_lib.grading.similarity_report import filtered_map, mark_spans, write_report

RING = ("copy_ring_1", "copy_ring_2")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """The synthetic class (40 independent students, 7 planted copies, 2 blank releases), compared."""
    folder = tmp_path_factory.mktemp("class")
    students, sources = sc.make_class(n=40, seed=0)
    release = sc.write_class(folder, students)
    result = compare_submissions(release, folder / "subs", log=lambda *a: None)
    paths = write_report(result, folder / "out")
    return {"folder": folder, "release": release, "students": students, "sources": sources, "result": result,
            "paths": paths}


def _group(sid: str, sources: dict[str, str]) -> str:
    """Which planted group a student belongs to (a copy and its source are one group)."""
    return sources.get(sid, sid)


def _is_planted(a: str, b: str, sources) -> bool:
    return _group(a, sources) == _group(b, sources)


def test_the_independent_students_are_correct_and_all_different(klass):
    independent = [s for s in klass["students"] if not s.blank and s.student_id not in klass["sources"]]
    assert len(independent) == 40
    for st in independent:
        sc.check_solution(st.sources())  # every generated solution passes the tests (and two more checks)
    codes = [tuple(st.sources()[q] for q in sc.SKELETONS) for st in independent]
    assert len(set(codes)) == 40
    for q in sc.SKELETONS:  # written differently: many distinct answers per question
        assert len({c[list(sc.SKELETONS).index(q)] for c in codes}) >= 35


def test_every_planted_pair_ranks_above_every_independent_pair(klass):
    pairs, sources = klass["result"].pairs, klass["sources"]
    planted_mask = np.array([_is_planted(a, b, sources) for a, b in zip(pairs.student_a, pairs.student_b, strict=True)])
    planted = pairs[planted_mask]
    expected = {frozenset((c, s)) for c, s in sources.items()} | {frozenset(RING)}
    assert {frozenset(p) for p in zip(planted.student_a, planted.student_b, strict=True)} == expected
    assert planted.index.max() == len(expected) - 1  # ranks 1..8 are the planted pairs
    independent = pairs[~planted_mask]
    assert planted["score"].min() > independent["score"].max()
    assert planted["score"].min() > 0.5 and independent["score"].max() < 0.35  # with a margin
    # by kind: the planted copies share most of their code and of their written answers; independent
    # students write the same short function alike now and then (a few ways to write it), never the same text
    assert planted["code"].min() > 0.6 > 0.2 > independent["code"].median()
    assert planted["written"].min() > 0.45 > 0.02 > independent["written"].max()


def test_renamed_reordered_and_comment_changed_copies(klass):
    pairs, folder = klass["result"].pairs, klass["folder"]

    def pair(a, b):
        row = pairs[((pairs.student_a == a) & (pairs.student_b == b)) | ((pairs.student_a == b) & (pairs.student_b == a))]
        assert len(row) == 1, (a, b)
        return row.iloc[0]

    def code(sid):
        ans = read_answers(folder / "subs" / sid / "simtoy.ipynb")
        return [ans[q] for q in sc.SKELETONS]

    for cid in ("copy_verbatim", "copy_renamed", "copy_comments"):
        src = klass["sources"][cid]
        p = pair(cid, src)
        assert p["code"] == 1.0 and all(p[q] == 1.0 for q in sc.SKELETONS), cid
        if cid != "copy_verbatim":  # the text differs: names, or comments
            assert all(a != b for a, b in zip(code(cid), code(src), strict=True)), cid
    assert pair("copy_verbatim", "s01")["score"] == 1.0
    assert pair("copy_renamed", "s04")["written"] == 1.0
    assert pair("copy_reordered", "s07")["code"] > 0.7  # statements swapped, the helper moved
    assert pair("copy_everything", "s13")["code"] > 0.5  # renamed, reordered, comments changed


def test_only_the_release_in_common_scores_near_zero(klass, tmp_path):
    pairs = klass["result"].pairs
    blanks = pairs[pairs.student_a.str.startswith("blank") | pairs.student_b.str.startswith("blank")]
    assert blanks.empty  # a blank release shares nothing with anyone once the release is removed
    rows = {r.student_id: r for r in klass["result"].rows}
    assert rows["blank1"].code_fingerprints == rows["blank1"].written_fingerprints == 0

    # Two students who keep the whole skeleton (docstrings, prompts restated) but write every statement
    # differently: near zero; without removing the release they look alike.
    rng = random.Random(5)
    a = sc.independent_student(rng, "skel_a")
    b = sc.independent_student(rng, "skel_b")
    for q, ans in a.code.items():
        g = sc.GRAMMARS[q]
        ans.keep_docstring = b.code[q].keep_docstring = True
        b.code[q].choice = {slot: (ans.choice[slot] + 1) % len(g[slot]) for slot in g}
        ans.helper = b.code[q].helper = -1
        ans.avg, b.code[q].avg = 0, 1
    a.text = {q: f"{p} {t}" for (q, p), t in zip(sc.PROMPTS.items(), a.text.values(), strict=True)}
    b.text = {q: f"{p} {t}" for (q, p), t in zip(sc.PROMPTS.items(), b.text.values(), strict=True)}
    release = sc.write_class(tmp_path, [a, b, *sc.make_class(n=0, planted=False, blanks=2)[0]])
    removed = compare_submissions(release, tmp_path / "subs", log=lambda *a: None).pairs
    kept = compare_submissions(release, tmp_path / "subs", settings=Settings(subtract_release=False),
                               log=lambda *a: None).pairs

    def score(df, x, y, col="score"):
        row = df[(df.student_a == x) & (df.student_b == y)]
        return float(row[col].iloc[0]) if len(row) else 0.0

    assert score(removed, "skel_a", "skel_b") < 0.1
    assert score(removed, "blank1", "blank2") == 0.0 and score(removed, "blank1", "skel_a") == 0.0
    assert score(kept, "blank1", "blank2", "code") == 1.0  # the control: the skeletons are all alike
    assert score(kept, "blank1", "blank2", "written") == 0.0  # "YOUR ANSWER HERE" is shorter than 4 words
    assert score(kept, "skel_a", "skel_b", "code") > 0.3
    assert score(kept, "skel_a", "skel_b", "written") > 0.15  # the restated questions


def test_the_index_gives_exactly_a_full_pairwise_comparison(klass):
    """Every pair's scores recomputed from each pair's own fingerprint sets, without the index."""
    result, s = klass["result"], klass["result"].settings
    qs = questions_of(klass["release"])
    rel = nbformat.read(klass["release"], as_version=4)
    boiler = {"code": set(), "written": set()}
    for cell in rel.cells:
        kind = {"code": "code", "markdown": "written"}[cell.cell_type]
        boiler[kind] |= set(fingerprints(cell.source, kind, s).tolist())
    compared = [r for r in result.rows if r.status == "ok"]
    sets = {}
    for r in compared:
        ans = read_answers(r.notebook)
        sets[r.student_id] = {q.grade_id: set(fingerprints(ans.get(q.grade_id, ""), q.kind, s).tolist()) - boiler[q.kind]
                              for q in qs}
    cutoff = max(int(s.common * len(compared)), s.common_min)
    for q in qs:
        df = Counter(h for st in sets.values() for h in st[q.grade_id])
        common = {h for h, c in df.items() if c > cutoff}
        for st in sets.values():
            st[q.grade_id] -= common
    got = result.pairs.set_index(["student_a", "student_b"])
    seen = 0
    for x, y in itertools.combinations(sorted(sets), 2):
        inter = {q.grade_id: len(sets[x][q.grade_id] & sets[y][q.grade_id]) for q in qs}
        size = {q.grade_id: len(sets[x][q.grade_id]) + len(sets[y][q.grade_id]) for q in qs}
        if not sum(inter.values()):
            assert (x, y) not in got.index
            continue
        seen += 1
        row = got.loc[(x, y)]
        kinds = {}
        for kind in ("code", "written"):
            ids = [q.grade_id for q in qs if q.kind == kind]
            tot = sum(size[g] for g in ids)
            kinds[kind] = 2 * sum(inter[g] for g in ids) / tot if tot else 0.0
            assert row[kind] == pytest.approx(kinds[kind], abs=1e-12), (x, y, kind)
        assert row["score"] == pytest.approx((kinds["code"] + kinds["written"]) / 2, abs=1e-12)
        assert row["shared"] == sum(inter.values())
        for g in inter:
            assert row[f"{g} shared"] == inter[g]
            assert row[g] == pytest.approx(2 * inter[g] / size[g] if size[g] else 0.0, abs=1e-12)
    assert seen == len(got) > 100


def test_fingerprints_are_stable_hashes_that_find_every_long_shared_run():
    text = "défF(V,V):V=V.V(V)returnV"
    k = 7
    h = kgram_hashes(text, k)
    direct = []
    for i in range(len(text) - k + 1):
        h1 = h2 = 0
        for ch in text[i:i + k]:
            h1 = (h1 * similarity._B1 + ord(ch)) % similarity._P1
            h2 = (h2 * similarity._B2 + ord(ch)) % similarity._P2
        direct.append(h1 * similarity._P2 + h2)
    assert h.tolist() == direct and max(direct) < 2**52
    # winnowing's guarantee: a run of k + window - 1 = 15 filtered characters shared anywhere is found
    s = Settings()
    rng = random.Random(1)
    for _ in range(20):
        run = "".join(f"{rng.choice('xyzw')} = {rng.choice('abcd')}({rng.choice('efgh')}) + {rng.randrange(10)}\n"
                      for _ in range(2))  # filtered: V=V(V)+3V=V(V)+7, 16 characters
        a = "if flag:\n    q = 1\n" + run + "while t:\n    t -= 1\n"
        b = "for u in v:\n    print(u, 2)\n" + run
        assert len(np.intersect1d(fingerprints(a, "code", s), fingerprints(b, "code", s))) >= 1


def test_fingerprints_most_of_the_class_holds_are_ignored(tmp_path):
    students, _ = sc.make_class(n=1, planted=False, blanks=0)
    one = students[0]
    clones = [sc.Student(f"clone{i:02d}", one.code, one.text) for i in range(12)]
    release = sc.write_class(tmp_path, clones)
    by_default = compare_submissions(release, tmp_path / "subs", log=lambda *a: None)
    assert by_default.settings.common_cutoff(12) == 10 and by_default.pairs.empty  # held by 12 > 10
    assert by_default.stats["ignored_common"] > 0
    kept = compare_submissions(release, tmp_path / "subs", settings=Settings(common=1.0), log=lambda *a: None)
    assert len(kept.pairs) == 66 and (kept.pairs["score"] == 1.0).all()
    clusters = [c for c in kept.clusters if c.question == "overall"]
    assert len(clusters) == 1 and len(clusters[0].members) == 12


@pytest.fixture
def odd_class(tmp_path):
    """Two copies of one student (their code holds HTML), one other student, and folders that cannot be compared."""
    students, _ = sc.make_class(n=2, planted=False, blanks=0)
    a = students[0]
    injected = sc.Student("O'Brien", a.code, {q: t + " </pre><script>alert(1)</script>" for q, t in a.text.items()})
    release = sc.write_class(tmp_path, [injected, sc.Student("copy", a.code, injected.text), students[1]])
    subs = tmp_path / "subs"
    (subs / "broken").mkdir()
    (subs / "broken" / "simtoy.ipynb").write_text("{not json")
    (subs / "not_a_notebook").mkdir()
    (subs / "not_a_notebook" / "simtoy.ipynb").write_text('{"cells": 3}')
    (subs / "empty").mkdir()
    (subs / "-dash").mkdir()
    shutil.copy(subs / "copy" / "simtoy.ipynb", subs / "-dash" / "simtoy.ipynb")
    (subs / "notes.txt").write_text("not a submission")
    return release, subs


def test_every_folder_gets_a_row_and_none_crashes(odd_class, tmp_path):
    release, subs = odd_class
    logs = []
    result = compare_submissions(release, subs, log=logs.append)
    status = {r.student_id: (r.status, r.message) for r in result.rows}
    assert {k: v[0] for k, v in status.items()} == {
        "O'Brien": "ok", "copy": "ok", "s01": "ok", "broken": "corrupt", "not_a_notebook": "corrupt",
        "empty": "missing", "-dash": "invalid_name"}
    assert "not a valid notebook" in status["broken"][1] and "re-download" in status["broken"][1]
    assert "no notebook" in status["empty"][1]
    assert "starts with '-'" in status["-dash"][1] and "roster" in status["-dash"][1]
    assert any("notes.txt" in m for m in logs)
    assert result.pairs.iloc[0][["student_a", "student_b"]].tolist() == ["O'Brien", "copy"]
    paths = write_report(result, tmp_path / "out")
    table = pd.read_csv(paths["submissions"], dtype=str, keep_default_na=False)
    assert sorted(table.student_id) == sorted(status)
    assert dict(zip(table.student_id, table.status, strict=True))["broken"] == "corrupt"
    assert all(table.loc[table.status != "ok", "message"].str.len() > 10)
    page = paths["html"].read_text()
    for sid in ("broken", "not_a_notebook", "empty", "-dash"):
        assert f"<td>{sid}</td>" in page
    assert "4 submission(s) could not be compared" in page
    assert "<script>alert" not in page
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in re.sub(r"</?mark>", "", page)
    assert "O&#39;Brien" in page or "O&#x27;Brien" in page

    # a roster maps the odd folder to a student id: it is compared under that id
    (tmp_path / "roster.csv").write_text("folder,student_id\n-dash,Dash Student\n")
    mapped = compare_submissions(release, subs, roster=tmp_path / "roster.csv", log=lambda *a: None)
    assert {r.student_id: r.status for r in mapped.rows}["Dash Student"] == "ok"
    assert {"copy", "Dash Student"} <= set(mapped.pairs.head(3)[["student_a", "student_b"]].values.ravel())


def test_a_notebook_unreadable_in_the_worker_and_a_failing_worker_are_rows(odd_class, monkeypatch, tmp_path):
    release, subs = odd_class
    bad = tmp_path / "gone.ipynb"
    bad.write_text("[1, 2")
    rec = similarity.fingerprint_submission(bad, questions_of(release), Settings())
    assert rec["status"] == "corrupt" and rec["message"].startswith("gone.ipynb is not a readable notebook")

    real = similarity.fingerprint_job

    def flaky(job):
        if any(sid == "s01" for sid, _ in job.items):
            raise MemoryError("worker out of memory")
        return real(job)

    monkeypatch.setattr(similarity, "fingerprint_job", flaky)
    result = compare_submissions(release, subs, chunk=1, log=lambda *a: None)
    status = {r.student_id: (r.status, r.message) for r in result.rows}
    assert status["s01"] == ("error", "the similarity worker failed: MemoryError: worker out of memory")
    assert status["copy"][0] == "ok" and len(result.pairs) >= 1


def test_the_csv_files(klass):
    paths, result = klass["paths"], klass["result"]
    pairs = pd.read_csv(paths["pairs"], dtype={"student_a": str, "student_b": str})
    assert pairs["rank"].tolist() == list(range(1, len(pairs) + 1))
    assert (np.diff(pairs["score"]) <= 0).all()  # the most similar first
    assert pairs["score"].min() >= result.settings.min_score - 1e-4
    assert len(pairs) == result.stats["listed_pairs"] < result.stats["candidate_pairs"]
    for q in sc.SKELETONS.keys() | sc.PROMPTS.keys():
        assert q in pairs.columns and f"{q} shared" in pairs.columns
    assert {frozenset(pairs.loc[i, ["student_a", "student_b"]]) for i in range(3)} == {
        frozenset(("copy_renamed", "s04")), frozenset(("copy_ring_2", "s30")), frozenset(("copy_verbatim", "s01"))}
    subs = pd.read_csv(paths["submissions"], dtype=str, keep_default_na=False)
    assert len(subs) == 49 and set(subs.status) == {"ok"}
    ring = subs[subs.student_id.isin(["copy_ring_1", "copy_ring_2", "s30"])].cluster
    assert ring.nunique() == 1 and ring.iloc[0] != ""
    clusters = pd.read_csv(paths["clusters"], dtype=str)
    overall = clusters[clusters.question == "overall"]
    assert overall.iloc[0].members == "copy_ring_1; copy_ring_2; s30"
    assert set(clusters.question) >= {"overall", *sc.SKELETONS}


def test_the_html_page(klass):
    page = klass["paths"]["html"].read_text()
    assert DISCLAIMER in page and "evidence for a human to review, not a verdict" in page
    assert page.index(DISCLAIMER) < page.index("Most similar pairs")  # said first
    sections = re.findall(r'<section class="pair" id="pair-(\d+)">\s*<h3>\d+\. (\S+) and (\S+):', page)
    pairs = klass["result"].listed()
    assert [(int(n), a, b) for n, a, b in sections] == [
        (i + 1, pairs.iloc[i].student_a, pairs.iloc[i].student_b) for i in range(klass["result"].settings.top)]

    # the renamed copy: both sides highlighted; its body statements marked, the given skeleton not
    body = page[page.index("copy_renamed and s04"):]
    body = body[:body.index("</section>")]
    cells = re.findall(r'<pre class="code">(.*?)</pre>', body, flags=re.S)
    assert len(cells) == 6  # three questions, two sides
    for cell in cells:
        marked = "".join(re.findall(r"<mark>(.*?)</mark>", cell, flags=re.S))
        given = "".join(re.findall(r'<span class="given">(.*?)</span>', cell, flags=re.S))
        assert "return" in marked and "def " in given and "YOUR CODE HERE" not in marked
    # on each side, the student's own statements (not the release's lines, not comments) are nearly all marked
    for sid, cell in zip(["copy_renamed", "s04"], cells[:2], strict=True):
        src = read_answers(klass["folder"] / "subs" / sid / "simtoy.ipynb")["moving_average"]
        given = {ln.strip() for ln in sc.SKELETONS["moving_average"].splitlines()}
        own = [ln.strip() for ln in src.splitlines() if ln.strip() not in given and not ln.strip().startswith("#")]
        marked = html.unescape("".join(re.findall(r"<mark>(.*?)</mark>", cell, flags=re.S)))
        covered = sum(len(ln) for ln in own if ln in marked)
        assert covered >= 0.8 * sum(len(ln) for ln in own), (own, marked)
    assert re.search(r'<pre class="written">.*<mark>', body, flags=re.S)


def test_highlights_map_copydetects_filtered_code_back_token_by_token(klass):
    """The walk over pygments' tokens gives copydetect's own filtered code, character for character, on
    every answer of the class and every code cell of a real assignment."""
    from copydetect.utils import filter_code

    sources = [a for r in klass["result"].compared for a in read_answers(r.notebook).values()]
    sources += [c.source for c in nbformat.read(ROOT / "notebooks" / "rnn_lm" / "rnn_lm.ipynb", as_version=4).cells
                if c.cell_type == "code"]
    for src in sources:
        filtered = filter_code(src, "a.py", language="python")[0]
        starts, ends = filtered_map(src, filtered)
        for ch, s, e in zip(filtered, starts, ends, strict=True):
            assert ch in src[s:e] or (ch in 'VFOPS"' and e > s), (ch, src[s:e])  # a character of its token
    assert filtered_map("x = 1", "V=2") is None  # not copydetect's result: the caller falls back


def test_mark_spans_escapes_and_keeps_the_text():
    text = "a < b & c\nreturn x"
    out = mark_spans(text, [(0, 5), (3, 9)], given=[(10, 16)])
    assert out == '<mark>a &lt; b &amp; c</mark>\n<span class="given">return</span> x'
    assert html.unescape(re.sub(r"</?(mark|span)[^>]*>", "", out)) == text


distributed = pytest.importorskip("distributed")


def test_local_processes_and_a_dask_cluster_give_the_same_result(klass):
    folder, expected = klass["folder"], klass["result"]
    local = compare_submissions(klass["release"], folder / "subs", workers=2, log=lambda *a: None)
    assert local.stats["backend"] == "2 workers" and local.stats["jobs"] > 1
    pd.testing.assert_frame_equal(local.pairs, expected.pairs)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = compare_submissions(klass["release"], folder / "subs", dask_scheduler=cluster.scheduler_address,
                                     chunk=10, log=lambda *a: None)
    assert remote.stats["backend"] == "dask" and remote.stats["jobs"] == 5
    pd.testing.assert_frame_equal(remote.pairs, expected.pairs)
    assert [(r.student_id, r.status) for r in remote.rows] == [(r.student_id, r.status) for r in expected.rows]
    assert [(c.question, c.members) for c in remote.clusters] == [(c.question, c.members) for c in expected.clusters]


def test_the_command_line(klass, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["--workdir", str(tmp_path / "ws"), "similarity", "simtoy", str(klass["folder"] / "subs"),
                     "--release", str(klass["release"]), "--output", str(out), "--workers", "1", "--top", "3"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "49 of 49 submissions compared" in printed and DISCLAIMER in printed
    assert re.search(r"1\s+copy_renamed\s+s04\s+100%\s+100%\s+100%", printed)
    assert f"report: {out / 'report.html'}" in printed
    assert {p.name for p in out.iterdir()} == {"pairs.csv", "submissions.csv", "clusters.csv", "report.html"}
    assert out.joinpath("report.html").read_text().count('<section class="pair"') == 3

    code = cli.main(["--workdir", str(tmp_path / "ws"), "similarity", "simtoy", str(tmp_path / "nowhere"),
                     "--release", str(klass["release"])])
    assert code == 2 and "Submissions folder" in capsys.readouterr().err
    (tmp_path / "none").mkdir()
    code = cli.main(["--workdir", str(tmp_path / "ws"), "similarity", "simtoy", str(tmp_path / "none"),
                     "--release", str(klass["release"]), "--output", str(tmp_path / "out2")])
    assert code == 1 and "0 of 0 submissions compared" in capsys.readouterr().out


def test_the_demo_step(klass, tmp_path):
    from course_lib.grading.similarity_report import demo_lines

    lines = demo_lines("simtoy", klass["release"], klass["folder"] / "subs", tmp_path / "sim")
    assert lines[0].startswith("Similarity of simtoy's example submissions")
    assert any(line.startswith("49 of 49 submissions compared") for line in lines) and DISCLAIMER in lines
    assert lines[-1] == "sharing nothing beyond the release with any other: blank1, blank2"
    assert (tmp_path / "sim" / "report.html").is_file()


def test_without_copydetect_the_command_says_what_to_install(klass, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "copydetect", None)  # import copydetect raises ImportError
    code = cli.main(["similarity", "simtoy", str(klass["folder"] / "subs"), "--release", str(klass["release"])])
    assert code == 2 and "pip install 'course-lib[grading]'" in capsys.readouterr().err
