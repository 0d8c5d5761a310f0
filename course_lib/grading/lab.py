"""JupyterLab for students: ``course lab`` / ``make lab``.

The server listens on the loopback interface only and asks for a random token (printed in the URL).
Each assignment's student release is copied into a work folder (``lab/`` by default) the first time;
after that the folder is the student's and is never overwritten, so ``make lab`` can be run again
without losing answers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from .errors import GradingError
from .workspace import Workspace


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_command(root: Path, port: int, token: str, *, open_browser: bool = False,
                settings_dir: Path | None = None, extra: list[str] | None = None) -> list[str]:
    """The ``jupyter lab`` command line: loopback only, token required, no calls home."""
    if not token:
        raise GradingError("a JupyterLab token must not be empty (anyone on this machine could use the server)")
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    cmd = [
        sys.executable, "-m", "jupyter", "lab", *as_root,
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={Path(root).resolve()}",
        f"--ServerApp.open_browser={open_browser}",
        # Offline-friendly and private: no news feed, no update check.
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if settings_dir is not None:
        cmd += [f"--LabApp.user_settings_dir={settings_dir}", f"--LabApp.workspaces_dir={settings_dir / 'workspaces'}"]
    return cmd + list(extra or [])


#: Jupyter config for students: hides nbgrader's instructor tools (Create Assignment, Formgrader, the
#: exchange's course and assignment lists) in JupyterLab; its Validate button stays.
STUDENT_CONFIG = Path(__file__).with_name("student_jupyter")


def lab_env(extra: dict | None = None, *, student: bool = True) -> dict:
    """The server's environment: plots inline (a headless ``MPLBACKEND=Agg``, as ``make`` sets, would hide
    them) and, for students, nbgrader's instructor extensions disabled (``JUPYTER_CONFIG_PATH``)."""
    env = {**os.environ, **(extra or {})}
    if env.get("MPLBACKEND", "").lower() == "agg":
        env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    if student:
        paths = [str(STUDENT_CONFIG)] + [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(paths)
    return env


def prepare_lab_folder(ws: Workspace, names: list[str], folder: Path) -> list[tuple[str, Path, bool]]:
    """Copy each assignment's student release into ``folder/<name>/`` unless it is already there.

    Returns (name, notebook path, newly copied). A student's existing work is never overwritten.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        dest = folder / name
        notebook = dest / f"{name}.ipynb"
        if notebook.exists():
            out.append((name, notebook, False))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            ws.release(name, output=Path(tmp))
            shutil.copytree(Path(tmp) / name, dest, dirs_exist_ok=True)
        out.append((name, notebook, True))
    return out


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """Wait for the server to answer ``url``; raise with its log when it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise GradingError(f"JupyterLab exited with status {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise GradingError(f"JupyterLab did not answer {url} within {timeout:g} s")


@contextlib.contextmanager
def running_lab(root: Path, *, token: str | None = None, port: int | None = None, env: dict | None = None,
                settings_dir: Path | None = None, log: Path | None = None, timeout: float = 90.0) -> Iterator[str]:
    """Start JupyterLab on ``root``; yield ``(base_url, token)``, then stop it and its kernels."""
    token = token or secrets.token_hex(24)
    port = port or free_port()
    logf = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(lab_command(root, port, token, settings_dir=settings_dir), cwd=root,
                            env=lab_env(env), stdout=logf, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/status?token={token}", proc, timeout)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 9)  # kernels the server did not shut down
        if log:
            logf.close()
