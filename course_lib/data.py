"""Data registry and checksummed fetching: mirror -> user cache -> download.

Every dataset the course uses is listed in ``registry.json`` (shipped as ``course_lib._data``; in
the repository it is ``data/registry.json``) with its canonical URL(s), the SHA-256 of the stored
mirror file and of the readable content, its licence terms and a one-line description.

>>> from course_lib.data import fetch, fetch_text, list_datasets
>>> path = fetch("ptb", "ptb.train.txt")          # pathlib.Path of the *uncompressed*, verified text
>>> text = fetch_text("tinyshakespeare")          # str, the whole file (1,115,394 characters)
>>> list_datasets()                               # one row per file: name, file, url, licence, in_mirror, in_cache

Where a file comes from (first hit wins):

1. ``$COURSE_DATA_MIRROR/<dataset>/<stored file>`` (e.g. ``ptb/ptb.train.txt.gz``), if the variable is
   set. The stored file is verified; gzip files are decompressed into the cache (and verified again).
   A mirror file with the wrong checksum is an error: it is never silently skipped.
2. The user cache, ``$COURSE_DATA_CACHE`` or else ``platformdirs.user_cache_dir("course_lib")``, laid
   out as ``<dataset>/<file key>`` (the readable content, e.g. ``ptb/ptb.train.txt``).
3. A download from the registry's URLs, in order, with a ``tqdm.auto`` progress bar, into a temporary
   file in the cache directory; it is unpacked if needed (gunzip, tar member, first N lines), verified,
   and only then renamed into place with :func:`os.replace` (atomic: no partial file is ever visible).

Nothing is ever written inside the package or the repository.

Checksums are strings ``"<algorithm>:<hex>"`` (``"sha256:86c4…"``, ``"md5:7c2a…"``).
"""

from __future__ import annotations

import copy
import csv
import difflib
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

__all__ = [
    "DataError",
    "UnknownDatasetError",
    "ChecksumError",
    "DownloadError",
    "fetch",
    "fetch_text",
    "list_datasets",
    "verify",
        "registry",
    "cache_dir",
    "mirror_dir",
]

#: Seconds to wait on a stalled connection before a download attempt fails.
DOWNLOAD_TIMEOUT = 60.0
_CHUNK = 1 << 20  # 1 MiB
_REPO_DATA = Path(__file__).resolve().parent.parent / "data"  # fallback when course_lib._data is not importable


# ---------------------------------------------------------------------------------------------------
# errors


class DataError(RuntimeError):
    """Base class of every error this module raises; the message says what to do about it."""


class UnknownDatasetError(DataError):
    """A dataset name or file key that the registry does not know."""


class ChecksumError(DataError):
    """A file's digest differs from the registry's. ``path``, ``expected`` and ``actual`` hold the details."""

    def __init__(self, message: str, *, path: Path, expected: str, actual: str):
        super().__init__(message)
        self.path = Path(path)
        self.expected = expected
        self.actual = actual


class DownloadError(DataError):
    """The file was neither in the mirror nor in the cache, and no URL could deliver it."""


# ---------------------------------------------------------------------------------------------------
# package resources


def _resource(*parts: str) -> Path:
    """Path of ``course_lib._data/<parts>`` (the repository's ``data/`` folder), via importlib.resources."""
    try:
        base = resources.files("course_lib._data")
        candidate = base.joinpath(*parts)
        # The package is installed as plain files (editable or wheel), so this is a real path.
        return Path(str(candidate))
    except (ModuleNotFoundError, TypeError, ValueError):
        return _REPO_DATA.joinpath(*parts)


_REGISTRY: dict[str, Any] | None = None


def _registry() -> dict[str, Any]:
    """The parsed registry (cached; tests replace ``_REGISTRY`` to point URLs elsewhere)."""
    global _REGISTRY
    if _REGISTRY is None:
        path = _resource("registry.json")
        if not path.is_file():
            path = _REPO_DATA / "registry.json"
        try:
            _REGISTRY = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(
                f"The data registry is missing (looked for {path}). Reinstall course_lib "
                "(pip install -e . from the repository root)."
            ) from None
    return _REGISTRY


def registry() -> dict[str, Any]:
    """A deep copy of the registry: ``{"datasets": {name: {"files": {file_key: entry}, ...}}, ...}``."""
    return copy.deepcopy(_registry())


def _datasets() -> dict[str, Any]:
    return _registry()["datasets"]


def _entry(name: str, file: str | None) -> tuple[str, dict[str, Any], str, dict[str, Any]]:
    """Resolve ``(name, file)`` to ``(name, dataset_entry, file_key, file_entry)`` or raise UnknownDatasetError."""
    datasets = _datasets()
    if name not in datasets:
        valid = sorted(datasets)
        close = difflib.get_close_matches(str(name), valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownDatasetError(
            f"Unknown dataset {name!r}.{hint} Valid names: {', '.join(valid)}. "
            "Call course_lib.data.list_datasets() to see every file."
        )
    ds = datasets[name]
    files = ds["files"]
    if file is None:
        if len(files) == 1:
            key = next(iter(files))
            return name, ds, key, files[key]
        raise UnknownDatasetError(
            f"Dataset {name!r} has {len(files)} files; say which one, e.g. fetch({name!r}, {next(iter(files))!r}). "
            f"Files: {', '.join(files)}."
        )
    if file in files:
        return name, ds, file, files[file]
    # also accept the stored name (e.g. "ptb.train.txt.gz") or the mirror path ("ptb/ptb.train.txt.gz")
    for key, entry in files.items():
        stored = entry["mirror"]["path"]
        if file in (stored, stored.rsplit("/", 1)[-1]):
            return name, ds, key, entry
    close = difflib.get_close_matches(str(file), list(files), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownDatasetError(f"Dataset {name!r} has no file {file!r}.{hint} Files: {', '.join(files)}.")


# ---------------------------------------------------------------------------------------------------
# locations


def mirror_dir() -> Path | None:
    """The mirror folder from ``$COURSE_DATA_MIRROR`` (``<dataset>/<file>`` layout), or None when unset.

    A relative value is taken relative to the current directory, or else to the repository root
    (so CI's ``../shared/data`` also works from inside ``notebooks/``).
    """
    value = os.environ.get("COURSE_DATA_MIRROR", "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute() and not path.exists():
        alt = _REPO_DATA.parent / path
        if alt.exists():
            return alt.resolve()
    return path.resolve() if path.exists() else path


def cache_dir() -> Path:
    """The user cache root: ``$COURSE_DATA_CACHE`` or ``platformdirs.user_cache_dir("course_lib")``.

    The folder is not created here; :func:`fetch` creates ``<cache>/<dataset>/`` when it writes.
    """
    value = os.environ.get("COURSE_DATA_CACHE", "").strip()
    if value:
        return Path(value).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_cache_dir("course_lib"))


def _cache_path(name: str, key: str) -> Path:
    return cache_dir() / name / key


def _substitute_paths(name: str, entry: dict[str, Any]) -> list[tuple[Path, str, dict[str, Any]]]:
    """Cache paths (and their checksums) of the substitute files the sources may have saved."""
    return [
        (cache_dir() / name / src["saved_as"], src["checksum"], src)
        for src in entry.get("sources", [])
        if src.get("unpack") == "substitute"
    ]


# ---------------------------------------------------------------------------------------------------
# checksums

_VERIFIED: dict[tuple[str, int, int, str], None] = {}  # (path, size, mtime_ns, checksum) already checked


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algo, sep, hexdigest = str(checksum).partition(":")
    algo = algo.strip().lower()
    if not sep or not hexdigest or algo not in hashlib.algorithms_available:
        raise ValueError(f"A checksum must look like 'sha256:<hex>' or 'md5:<hex>', got {checksum!r}.")
    return algo, hexdigest.strip().lower()


def _digest(path: Path, algo: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algo).hexdigest()


def _default_advice(path: Path) -> str:
    return (
        f"Delete {path} and fetch it again (it will be re-downloaded or re-copied). If it came from "
        "COURSE_DATA_MIRROR, the mirror copy is damaged or outdated: re-copy it or point COURSE_DATA_MIRROR "
        "at a good copy."
    )


def _verify(path: Path, checksum: str, *, advice: str | None = None) -> None:
    path = Path(path)
    algo, expected = _parse_checksum(checksum)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"Cannot verify {path}: the file does not exist.") from None
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns, f"{algo}:{expected}")
    if memo in _VERIFIED:
        return
    actual = _digest(path, algo)
    if actual != expected:
        raise ChecksumError(
            f"Checksum mismatch for {path}:\n"
            f"  expected {algo}:{expected}\n"
            f"  actual   {algo}:{actual}\n"
            f"{advice or _default_advice(path)}",
            path=path,
            expected=f"{algo}:{expected}",
            actual=f"{algo}:{actual}",
        )
    _VERIFIED[memo] = None


def verify(path: str | os.PathLike, checksum: str) -> None:
    """Check that the file at ``path`` has digest ``checksum`` (``"sha256:<hex>"``, ``"md5:<hex>"``, ...).

    Returns None on success. Raises :class:`ChecksumError` (naming the path and both digests) on a
    mismatch, :class:`DataError` when the file does not exist, ValueError for a malformed checksum.
    Results are remembered per (path, size, mtime), so verifying an unchanged file again is free.
    """
    _verify(Path(path), checksum)


def _remember(path: Path, checksum: str) -> None:
    algo, expected = _parse_checksum(checksum)
    st = path.stat()
    _VERIFIED[(str(path.resolve()), st.st_size, st.st_mtime_ns, f"{algo}:{expected}")] = None


# ---------------------------------------------------------------------------------------------------
# temp files and unpacking


def _tempfile(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    return Path(tmp)


def _unlink(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _gunzip(src: Path, out: Path) -> None:
    with gzip.open(src, "rb") as fin, open(out, "wb") as fout:
        shutil.copyfileobj(fin, fout, _CHUNK)


def _tar_member(src: Path, member: str, out: Path) -> None:
    want = member.removeprefix("./")
    with tarfile.open(src, "r:*") as tf:
        for info in tf:
            if info.isfile() and info.name.removeprefix("./") == want:
                fin = tf.extractfile(info)
                assert fin is not None
                with fin, open(out, "wb") as fout:
                    shutil.copyfileobj(fin, fout, _CHUNK)
                return
    raise DataError(f"The archive downloaded to {src} has no member {member!r}.")


def _head_lines(src: Path, n: int, out: Path) -> None:
    with open(src, "rb") as fin, open(out, "wb") as fout:
        for i, line in enumerate(fin):
            if i >= n:
                break
            fout.write(line)


_IMDB_REVIEW = re.compile(r"(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt")


def _build_imdb_subset(tar_path: Path, out: Path, *, max_id: int = 500) -> None:
    """Write the IMDB subset CSV built from an aclImdb tarball (the repack or the original).

    Columns ``split,label,rating,id,text``; rows are the reviews with ``id < max_id`` in the order
    train/neg, train/pos, test/neg, test/pos, each by id; ``csv.writer`` with ``lineterminator="\\n"``.
    """
    found: dict[tuple[str, str, int], tuple[int, str]] = {}
    with tarfile.open(tar_path, "r:*") as tf:
        for info in tf:
            m = _IMDB_REVIEW.fullmatch(info.name)
            if m and info.isfile() and int(m.group(3)) < max_id:
                fin = tf.extractfile(info)
                assert fin is not None
                text = fin.read().decode("utf-8")
                found[(m.group(1), m.group(2), int(m.group(3)))] = (int(m.group(4)), text)
                if len(found) == 4 * max_id:
                    break  # all found: no need to decompress the rest
    with open(out, "w", encoding="utf-8", newline="") as fout:
        writer = csv.writer(fout, lineterminator="\n")
        writer.writerow(["split", "label", "rating", "id", "text"])
        for split in ("train", "test"):
            for label in ("neg", "pos"):
                for i in range(max_id):
                    if (split, label, i) not in found:
                        raise DataError(f"{tar_path} has no review aclImdb/{split}/{label}/{i}_*.txt.")
                    rating, text = found[(split, label, i)]
                    writer.writerow([split, label, rating, i, text])


_RECIPES = {"imdb_subset": _build_imdb_subset}
_UNPACK_METHODS = {"none", "gunzip", "tar-member", "head-lines", "substitute", "derive"}


def _install(tmp: Path, dest: Path, checksum: str, *, advice: str) -> Path:
    """Verify ``tmp`` against ``checksum`` and atomically move it to ``dest`` (``tmp`` is removed on failure)."""
    try:
        _verify(tmp, checksum, advice=advice)
    except BaseException:
        _unlink(tmp)
        raise
    os.replace(tmp, dest)
    _remember(dest, checksum)
    return dest


# ---------------------------------------------------------------------------------------------------
# fetch


def _download(url: str, dest: Path, *, desc: str, progress: bool) -> Path:
    """Download ``url`` into a temp file next to ``dest``; return the temp path (caller cleans up)."""
    from course_lib import __version__

    tmp = _tempfile(dest)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": f"course_lib/{__version__}"})
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with open(tmp, "wb") as fout, tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not progress
            ) as bar:
                while chunk := response.read(_CHUNK):
                    fout.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise DataError(f"download of {url} stopped after {received:,} of {total:,} bytes")
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _from_source(name: str, key: str, entry: dict[str, Any], src: dict[str, Any], *, progress: bool) -> Path:
    """Get the file from one registry source into the cache; return the verified path."""
    dest = _cache_path(name, key)
    content_sum = entry["content"]["checksum"]
    method = src.get("unpack", "none")
    if method not in _UNPACK_METHODS:
        raise DataError(f"Registry error: unknown unpack method {method!r} for {name}/{key}.")
    advice = (
        f"The data at {src.get('url')} is not what the registry expects (changed upstream, or a broken "
        "download). Nothing was saved. Try again later, or set COURSE_DATA_MIRROR to a folder holding "
        f"{entry['mirror']['path']}."
    )
    if method == "derive":
        origin = fetch(name, src["from"], progress=progress)
        tmp = _tempfile(dest)
        try:
            kwargs = {k: v for k, v in src.items() if k == "max_id"}
            _RECIPES[src["recipe"]](origin, tmp, **kwargs)
        except BaseException:
            _unlink(tmp)
            raise
        return _install(tmp, dest, content_sum, advice=f"Rebuilding {key} from {origin} gave different bytes.")

    url = src["url"]
    if method == "substitute":
        dest = cache_dir() / name / src["saved_as"]
        downloaded = _download(url, dest, desc=f"{name}/{src['saved_as']}", progress=progress)
        return _install(downloaded, dest, src["checksum"], advice=advice)

    downloaded = _download(url, dest, desc=f"{name}/{key}", progress=progress)
    if method == "none":
        return _install(downloaded, dest, content_sum, advice=advice)
    out = None
    try:
        if src.get("checksum"):
            _verify(downloaded, src["checksum"], advice=advice)
        out = _tempfile(dest)
        if method == "gunzip":
            _gunzip(downloaded, out)
        elif method == "tar-member":
            _tar_member(downloaded, src["member"], out)
        else:  # "head-lines"
            _head_lines(downloaded, int(src["lines"]), out)
    except BaseException:
        _unlink(out)
        raise
    finally:
        _unlink(downloaded)
    return _install(out, dest, content_sum, advice=advice)


def fetch(name: str, file: str | None = None, *, progress: bool = True) -> Path:
    """Return the local path of a verified, readable copy of registered file ``name/file``.

    Args:
        name: dataset name, e.g. ``"tinyshakespeare"``, ``"ptb"``, ``"wikitext-2"``, ``"pig_latin"``, ``"imdb"``.
        file: file key (the content's name), e.g. ``"ptb.train.txt"``, ``"train.txt"``, ``"imdb_subset_2000.csv"``,
            ``"aclImdb_v1_labeled.tar.xz"``. May be omitted when the dataset has exactly one file.
        progress: show a ``tqdm.auto`` progress bar while downloading.

    Returns:
        A :class:`pathlib.Path`. Text files stored gzipped are returned decompressed (a file in the cache,
        checked against the content's SHA-256); archives (``.tar.xz``) are returned as they are. Files stored
        uncompressed in the mirror are returned in place (read them, don't write them).
        Exception: without mirror or cache copy, ``("imdb", "aclImdb_v1_labeled.tar.xz")`` downloads the
        original Stanford ``aclImdb_v1.tar.gz`` (a superset with the same ``aclImdb/`` layout) and returns that;
        open archives with ``tarfile.open(path)``, which detects the compression.

    Raises:
        UnknownDatasetError: unknown name or file key (the message lists the valid ones).
        ChecksumError: a mirror, cache or downloaded file has the wrong digest (never skipped silently).
        DownloadError: not in the mirror or cache, and no URL worked (the message says how to fix it).
    """
    name, ds, key, entry = _entry(name, file)
    stored = entry["mirror"]
    dest = _cache_path(name, key)

    # 1. mirror
    mirror = mirror_dir()
    if mirror is not None:
        mpath = mirror / stored["path"]
        if mpath.is_file():
            _verify(
                mpath,
                stored["checksum"],
                advice=(
                    f"The mirror copy is damaged or outdated. Fix or replace {mpath}, or point COURSE_DATA_MIRROR "
                    f"(currently {mirror}) at a good copy, or unset it to use the cache/download instead."
                ),
            )
            if stored.get("unpack", "none") == "none":
                return mpath
            if dest.is_file():
                _verify(dest, entry["content"]["checksum"])
                return dest
            if stored["unpack"] != "gunzip":
                raise DataError(f"Registry error: unknown mirror unpack method {stored['unpack']!r} for {name}/{key}.")
            tmp = _tempfile(dest)
            try:
                _gunzip(mpath, tmp)
            except BaseException:
                _unlink(tmp)
                raise
            return _install(
                tmp, dest, entry["content"]["checksum"], advice=f"The content of {mpath} does not match the registry."
            )

    # 2. cache
    if dest.is_file():
        _verify(dest, entry["content"]["checksum"])
        return dest
    for path, checksum, _ in _substitute_paths(name, entry):
        if path.is_file():
            _verify(path, checksum)
            return path

    # 3. download (or derive)
    sources = entry.get("sources", [])
    failures: list[str] = []
    checksum_errors: list[ChecksumError] = []
    for src in sources:
        try:
            path = _from_source(name, key, entry, src, progress=progress)
        except ChecksumError as err:
            checksum_errors.append(err)
            failures.append(
                f"  - {src.get('url') or 'rebuilt locally'}: wrong checksum for {err.path} "
                f"(actual {err.actual}, expected {err.expected})"
            )
            continue
        except (OSError, EOFError, tarfile.TarError, zlib.error, lzma.LZMAError, DataError) as err:
            reason = err.reason if type(err) is urllib.error.URLError else err
            failures.append(f"  - {src.get('url') or 'rebuilt from ' + src.get('from', '?')}: {type(err).__name__}: {reason}")
            continue
        if failures:
            warnings.warn(
                f"{name}/{key}: fetched from {src.get('url') or 'a local rebuild'} after earlier sources failed:\n"
                + "\n".join(failures),
                RuntimeWarning,
                stacklevel=2,
            )
        return path

    if mirror is None:
        mirror_note = "COURSE_DATA_MIRROR is not set"
    elif not mirror.is_dir():
        mirror_note = f"COURSE_DATA_MIRROR={mirror} does not exist"
    else:
        mirror_note = f"COURSE_DATA_MIRROR={mirror} has no {stored['path']}"
    tried = "\n".join(failures) if failures else "  (the registry lists no URL for it)"
    message = (
        f"Could not get {name}/{key}. It is not in the mirror ({mirror_note}) nor in the cache ({dest}), "
        f"and fetching it failed:\n{tried}\n"
        "To fix this, do one of:\n"
        "  - connect to the internet and run fetch() again;\n"
        f"  - set COURSE_DATA_MIRROR to a folder laid out as <dataset>/<file>, holding {stored['path']};\n"
        f"  - place the file (uncompressed, as '{key}') at {dest}."
    )
    if checksum_errors:
        err = checksum_errors[-1]
        raise ChecksumError(message, path=err.path, expected=err.expected, actual=err.actual)
    raise DownloadError(message)


def fetch_text(name: str, file: str | None = None) -> str:
    """The whole content of a registered text file as ``str`` (UTF-8, exact: no newline translation).

    A byte-order mark, if the file has one (``pg161.txt``), is kept. Archives raise :class:`DataError`.
    """
    _, _, key, entry = _entry(name, file)
    if entry.get("kind") == "archive":
        raise DataError(f"{name}/{key} is an archive, not text: use fetch() and tarfile.open(path).")
    return fetch(name, key).read_bytes().decode("utf-8")


def list_datasets():
    """One row per registered file, as a ``pandas.DataFrame``.

    Columns: ``name``, ``file`` (the key for :func:`fetch`), ``kind`` (text/csv/archive), ``bytes`` (of the
    content fetch returns), ``url`` (canonical source), ``licence``, ``in_mirror``, ``in_cache`` (bool: the
    file exists there; checksums are not computed), ``description``.
    """
    import pandas as pd

    mirror = mirror_dir()
    rows = []
    for name, ds in _datasets().items():
        for key, entry in ds["files"].items():
            rows.append(
                {
                    "name": name,
                    "file": key,
                    "kind": entry.get("kind", "text"),
                    "bytes": entry["content"]["bytes"],
                    "url": _canonical_url(ds, entry),
                    "licence": entry.get("licence", ds.get("licence", "")),
                    "in_mirror": bool(mirror is not None and (mirror / entry["mirror"]["path"]).is_file()),
                    "in_cache": _cache_path(name, key).is_file()
                    or any(p.is_file() for p, _, _ in _substitute_paths(name, entry)),
                    "description": entry.get("description", ""),
                }
            )
    return pd.DataFrame(rows)


def _canonical_url(ds: dict[str, Any], entry: dict[str, Any]) -> str | None:
    sources = entry.get("sources", [])
    for src in sources:
        if src.get("role") == "canonical" and src.get("url"):
            return src["url"]
    for src in sources:
        if src.get("url"):
            return src["url"]
        if src.get("unpack") == "derive" and src.get("from") in ds["files"]:
            return _canonical_url(ds, ds["files"][src["from"]])
    return None


# ---------------------------------------------------------------------------------------------------
# recorded results
