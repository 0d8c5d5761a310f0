"""The grading sandbox: what a student's process can see, reach and use.

Each test starts a short Python command through the real wrapper,
``python -m course_lib.grading.sandbox CONFIG.json -- python -c ...``, and reads back what it
found (as JSON on stdout). The bubblewrap tests are skipped, with the reason, where ``probe()``
says bubblewrap cannot run; the rlimit and cgroup tests need only Linux (and, for cgroups, a
machine that lets us create one).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO

from course_lib.grading.sandbox import GIB, MIB, Cgroups, Limits, SandboxConfig, main, probe

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")


def needs_bwrap():
    why = probe()
    if why:
        pytest.skip(f"bubblewrap sandbox unavailable here: {why}")


def run_sandboxed(tmp_path: Path, code: str, *, limits: Limits | None = None, isolate: bool = True,
                  env: dict | None = None, cgroups: list[str] = (), timeout: float = 60) -> subprocess.CompletedProcess:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    cfg = SandboxConfig(workdir=str(workdir), env=dict(env or {}), limits=limits or Limits(), isolate=isolate,
                        cgroups=list(cgroups))
    cfg_path = tmp_path / f"sandbox-{uuid.uuid4().hex[:6]}.json"
    cfg.dump(cfg_path)
    host_env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_HOST_SECRET": "s3cr3t"}
    return subprocess.run(
        [sys.executable, "-m", "course_lib.grading.sandbox", str(cfg_path), "--", sys.executable, "-c",
         textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=host_env)


def last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# =============================================================================== isolation (bubblewrap)
PROBE = """
import json, os, socket
r = {"pid": os.getpid(), "cwd": os.getcwd(), "hostname": socket.gethostname()}
r["notebooks"] = os.path.exists(os.environ["PROBE_NOTEBOOKS"])
r["repo_tests"] = os.path.exists(os.environ["PROBE_REPO_TESTS"])
r["secret"] = os.path.exists(os.environ["PROBE_SECRET"])
r["secret_dir"] = os.path.exists(os.path.dirname(os.environ["PROBE_SECRET"]))
r["host_env"] = os.environ.get("COURSE_HOST_SECRET")
r["home"] = os.environ.get("HOME")
with open("written-inside.txt", "w") as f:
    f.write("hello from the sandbox")
try:
    with open(os.path.join(os.environ["PROBE_COURSE_LIB"], "planted.py"), "w") as f:
        f.write("x = 1")
    r["course_lib_write"] = "ok"
except OSError as e:
    r["course_lib_write"] = type(e).__name__
try:
    s = socket.create_connection(("127.0.0.1", int(os.environ["PROBE_PORT"])), timeout=3)
    s.sendall(b"leak")
    r["net"] = "connected"
except OSError as e:
    r["net"] = type(e).__name__ + ": " + str(e)
import course_lib.grading.checks  # the kernel still gets the course package
r["course_lib_import"] = course_lib.grading.checks.CheckFailed.__name__
print(json.dumps(r))
"""


@pytest.fixture(scope="module")
def isolation(tmp_path_factory):
    """One sandboxed run that reports what it could see and do (shared by the tests below)."""
    needs_bwrap()
    root = tmp_path_factory.mktemp("sandbox")
    secret_dir = tmp_path_factory.mktemp("other-submission")
    secret = secret_dir / "answers.txt"
    secret.write_text("another student's work")

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    got: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    got.append(conn.recv(16))
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:  # control: reachable from the host
            s.sendall(b"host")
        import course_lib

        course_lib_dir = Path(course_lib.__file__).resolve().parent
        proc = run_sandboxed(root, PROBE, env={
            "PROBE_NOTEBOOKS": str(REPO / "notebooks"), "PROBE_REPO_TESTS": str(REPO / "tests"),
            "PROBE_SECRET": str(secret), "PROBE_PORT": str(port), "PROBE_COURSE_LIB": str(course_lib_dir)})
        result = last_json(proc)
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
    assert not (course_lib_dir / "planted.py").exists()
    return {"r": result, "workdir": root / "work", "secret": secret, "got": got}


def test_sandbox_hides_the_repository_notebooks_and_tests(isolation):
    assert (REPO / "notebooks").is_dir()  # present on the host...
    assert isolation["r"]["notebooks"] is False  # ...but not inside
    assert isolation["r"]["repo_tests"] is False


def test_sandbox_hides_other_folders(isolation):
    assert isolation["secret"].is_file()
    assert isolation["r"]["secret"] is False and isolation["r"]["secret_dir"] is False


def test_sandbox_workdir_is_writable_and_shared_with_the_host(isolation):
    r = isolation["r"]
    assert r["cwd"] == str(isolation["workdir"])
    assert (isolation["workdir"] / "written-inside.txt").read_text() == "hello from the sandbox"


def test_sandbox_course_package_is_read_only_but_importable(isolation):
    r = isolation["r"]
    assert r["course_lib_write"] == "OSError"  # EROFS
    assert r["course_lib_import"] == "CheckFailed"


def test_sandbox_has_no_network(isolation):
    net = isolation["r"]["net"]
    assert net != "connected", "the sandbox reached a server on the host's loopback"
    assert "unreachable" in net.lower() or "refused" in net.lower(), net
    assert isolation["got"] == [b"host"]  # only the host's control connection arrived


def test_sandbox_has_its_own_pid_namespace_and_environment(isolation):
    r = isolation["r"]
    assert 1 <= r["pid"] <= 5, r["pid"]
    assert r["hostname"] == "sandbox"
    assert r["host_env"] is None  # --clearenv: the grader's environment does not leak
    assert r["home"] == "/home/student"


# =============================================================================== rlimits
MEMORY = """
import json, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
if soft == resource.RLIM_INFINITY or soft > 2 * 2**30:
    print(json.dumps({"limit": soft, "result": "no limit: not allocating"}))
    sys.exit(0)
try:
    b = bytearray(6 * 2**30)
    result = "allocated"
except MemoryError:
    result = "MemoryError"
print(json.dumps({"limit": soft, "result": result}))
"""


@pytest.mark.parametrize("isolate", [True, False], ids=["bubblewrap", "rlimits-only"])
def test_memory_limit_gives_memory_error(tmp_path, isolate):
    if isolate:
        needs_bwrap()
    r = last_json(run_sandboxed(tmp_path, MEMORY, limits=Limits(memory_bytes=1 * GIB), isolate=isolate))
    assert r == {"limit": GIB, "result": "MemoryError"}


def test_rlimits_only_mode_runs_in_the_workdir_with_the_env(tmp_path):
    code = "import json, os, resource; print(json.dumps([os.getcwd(), os.environ.get('X_SET'), " \
           "resource.getrlimit(resource.RLIMIT_FSIZE)[0], resource.getrlimit(resource.RLIMIT_CORE)[0]]))"
    r = last_json(run_sandboxed(tmp_path, code, isolate=False, env={"X_SET": "yes"},
                                limits=Limits(file_bytes=3 * MIB)))
    assert r == [str(tmp_path / "work"), "yes", 3 * MIB, 0]


# =============================================================================== cgroups
FORK = """
import json, os, time
kids, error = [], None
for i in range(300):
    try:
        pid = os.fork()
    except OSError as e:
        error = type(e).__name__
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
for k in kids:
    os.kill(k, 9)
for k in kids:
    os.waitpid(k, 0)
print(json.dumps({"forked": len(kids), "error": error}))
"""


def wait_empty(cg: Cgroups, seconds: float = 5.0) -> bool:
    """Whether the cgroup empties within ``seconds`` (bubblewrap's own init exits a moment after
    the command does)."""
    for _ in range(int(seconds / 0.05)):
        if not cg.procs():
            return True
        time.sleep(0.05)
    return False


def test_cgroup_bounds_a_fork_loop(tmp_path):
    needs_bwrap()
    cg = Cgroups(f"course-test-{uuid.uuid4().hex[:8]}", Limits(max_processes=50))
    try:
        if not cg.paths:
            pytest.skip("this machine does not let us create a cgroup (not root, or no pids controller)")
        # RLIMIT_NPROC is set high, so only the cgroup's pids.max can stop the loop
        proc = run_sandboxed(tmp_path, FORK, limits=Limits(max_processes=100_000),
                             cgroups=[str(p) for p in cg.paths])
        r = last_json(proc)
        assert r["error"] == "BlockingIOError", r  # fork() -> EAGAIN
        assert 30 <= r["forked"] < 50, r
        assert cg.pids_exhausted()
        assert wait_empty(cg), cg.procs()  # every process of the sandbox has exited
    finally:
        cg.remove()
    assert not any(p.exists() for p in cg.paths)


def test_cgroup_kill_ends_every_process(tmp_path):
    cg = Cgroups(f"course-test-{uuid.uuid4().hex[:8]}", Limits(max_processes=20))
    try:
        if not cg.paths:
            pytest.skip("this machine does not let us create a cgroup")
        cfg = SandboxConfig(workdir=str(tmp_path), isolate=False, cgroups=[str(p) for p in cg.paths])
        cfg.dump(tmp_path / "cfg.json")
        sleeper = subprocess.Popen([sys.executable, "-m", "course_lib.grading.sandbox", str(tmp_path / "cfg.json"),
                                    "--", "sleep", "60"])
        for _ in range(100):
            if sleeper.pid in cg.procs():
                break
            time.sleep(0.05)
        assert sleeper.pid in cg.procs()
        cg.kill()
        assert sleeper.wait(timeout=10) == -9
        assert wait_empty(cg), cg.procs()
    finally:
        cg.remove()


# =============================================================================== config and messages
def test_limits_describe():
    lim = Limits(memory_bytes=GIB // 2, cell_timeout=30, notebook_timeout=900.5, max_processes=64,
                 output_bytes=2 * MIB, file_bytes=MIB // 4)
    assert lim.describe("memory") == "memory limit (0.5 GiB)"
    assert lim.describe("cell_timeout") == "time limit per cell (30 s)"
    assert lim.describe("notebook_timeout") == "time limit per notebook (900.5 s)"
    assert lim.describe("processes") == "process limit (64)"
    assert lim.describe("output") == "output limit per cell (2 MiB)"
    assert lim.describe("file") == "file size limit (0.25 MiB)"
    assert lim.describe("died") == "died"
    assert Limits().describe("memory") == "memory limit (4 GiB)"


def test_sandbox_config_round_trips_through_json(tmp_path):
    cfg = SandboxConfig(workdir="/w", rw=["/r"], ro=["/o"], env={"A": "1"}, limits=Limits(max_processes=7),
                        isolate=False, cgroups=["/sys/fs/cgroup/x"], log_file="/w/log")
    cfg.dump(tmp_path / "c.json")
    back = SandboxConfig.load(tmp_path / "c.json")
    assert back == cfg and isinstance(back.limits, Limits) and back.limits.max_processes == 7


def test_wrapper_usage_error():
    with pytest.raises(SystemExit, match="usage: python -m course_lib.grading.sandbox CONFIG.json -- COMMAND"):
        main(["config.json", "python"])


def test_private_mounts_come_before_binds_that_may_live_under_them(tmp_path):
    """A course cloned under /tmp (or a venv under /home) must stay visible in the sandbox: bubblewrap
    applies mounts in order, so the private /tmp and /home tmpfs must precede every bind."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    from course_lib.grading.sandbox import SandboxConfig, bwrap_args

    args = bwrap_args(SandboxConfig(workdir=str(tmp_path)))
    last_tmpfs = max(i for i, a in enumerate(args) if a == "--tmpfs")
    first_bind = min(i for i, a in enumerate(args) if a in ("--ro-bind-try", "--ro-bind", "--bind"))
    assert last_tmpfs < first_bind
