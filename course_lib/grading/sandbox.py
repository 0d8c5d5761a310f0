"""Run a student's kernel in a sandbox: Linux namespaces (bubblewrap) and resource limits.

The sandbox sees a read-only system (``/usr``, ``/etc``, the Python installation and virtual
environment, the ``course_lib`` package and the data mirror and cache), a private ``/tmp`` and
``$HOME``, and exactly the folders the grader binds in: the submission's private working copy and
the folder where test cells record their outputs. It has no network (a new, empty network
namespace), its own PID namespace, and cannot see other submissions, the instructor's source
notebook, the hidden tests or the gradebook.

Limits are set with ``setrlimit`` before ``bwrap`` starts, so every process in the sandbox inherits
them: address space (memory), number of processes (in the sandbox's own user namespace, so a fork
bomb cannot touch the grader or another student), file size (what a cell may write) and core dumps.
Wall-clock limits per cell and per notebook are the executor's job (it kills the sandbox).

Use it as a wrapper::

    python -m course_lib.grading.sandbox CONFIG.json -- python -m ipykernel_launcher -f CONN.json
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from pathlib import Path

GIB = 1024 ** 3
MIB = 1024 ** 2


@dataclass
class Limits:
    """Per-submission limits; every one can be set from ``course autograde``'s options."""

    memory_bytes: int = 4 * GIB  # address space of each process in the sandbox
    cell_timeout: float = 60.0  # wall-clock seconds per cell
    notebook_timeout: float = 600.0  # wall-clock seconds for the whole notebook
    max_processes: int = 256  # processes and threads in the sandbox
    output_bytes: int = 1 * MIB  # text and images a single cell may print or display
    file_bytes: int = 256 * MIB  # the largest file a cell may write
    cpus: float = 1.0  # CPU time share of the whole sandbox (a cgroup quota), so a fork bomb cannot starve the others

    def describe(self, which: str) -> str:
        texts = {
            "memory": f"memory limit ({self.memory_bytes / GIB:g} GiB)",
            "cell_timeout": f"time limit per cell ({self.cell_timeout:g} s)",
            "notebook_timeout": f"time limit per notebook ({self.notebook_timeout:g} s)",
            "processes": f"process limit ({self.max_processes})",
            "output": f"output limit per cell ({self.output_bytes / MIB:g} MiB)",
            "file": f"file size limit ({self.file_bytes / MIB:g} MiB)",
        }
        return texts.get(which, which)


@dataclass
class SandboxConfig:
    """What one sandbox may see; written as JSON next to the submission and read by :func:`main`."""

    workdir: str  # the submission's private working copy (read-write, also the cwd)
    rw: list[str] = field(default_factory=list)  # more read-write folders (the record folder)
    ro: list[str] = field(default_factory=list)  # more read-only paths (the connection file, data)
    env: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    isolate: bool = True  # False: rlimits only (no bubblewrap on this machine)
    cgroups: list[str] = field(default_factory=list)  # cgroup folders the sandbox joins (pids, memory)
    log_file: str = ""  # where the kernel process's own stdout and stderr go

    def dump(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "SandboxConfig":
        d = json.loads(Path(path).read_text())
        d["limits"] = Limits(**d.get("limits", {}))
        return cls(**d)


class SandboxUnavailable(RuntimeError):
    pass


_PROBE: dict[str, str | None] = {}


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def probe() -> str | None:
    """None when bubblewrap works here, else why not (cached)."""
    if "result" in _PROBE:
        return _PROBE["result"]
    exe = bwrap_path()
    if exe is None:
        why = "bubblewrap (bwrap) is not installed: on Debian/Ubuntu run `apt-get install -y bubblewrap`"
    else:
        try:
            r = subprocess.run([exe, *_namespace_args(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
                               capture_output=True, text=True, timeout=20)
            why = None if r.returncode == 0 else f"bubblewrap cannot create namespaces here: {r.stderr.strip()[:300]}"
        except Exception as exc:
            why = f"bubblewrap failed to start: {exc}"
    _PROBE["result"] = why
    return why


def _namespace_args() -> list[str]:
    return ["--unshare-user", "--uid", "1000", "--gid", "1000", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session"]


def _system_ro() -> list[str]:
    """Read-only paths a Python kernel needs: the OS, the interpreter, the venv and course_lib."""
    paths = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc", "/opt"]
    paths += [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with_path = sysconfig.get_paths().get(key)
        if with_path:
            paths.append(with_path)
    import course_lib

    paths.append(str(Path(course_lib.__file__).resolve().parent))
    try:
        import course_lib._data as data_pkg  # the registry (data/ in the repository)

        paths.append(str(Path(data_pkg.__file__).resolve().parent))
    except Exception:
        pass
    # Editable installs point at the repository through a finder module in site-packages; binding
    # the two package folders above is enough. The rest of the repository (notebooks/ with the
    # solutions) stays out.
    for var in ("COURSE_DATA_MIRROR", "COURSE_DATA_CACHE"):
        if os.environ.get(var):
            paths.append(os.environ[var])
    from course_lib.data import cache_dir

    try:
        paths.append(str(cache_dir()))
    except Exception:
        pass
    out: list[str] = []
    for p in paths:
        if p and os.path.exists(p):
            rp = os.path.realpath(p)
            for q in {p, rp}:
                if q not in out:
                    out.append(q)
    return out


def bwrap_args(cfg: SandboxConfig) -> list[str]:
    exe = bwrap_path()
    if exe is None:
        raise SandboxUnavailable(probe() or "bubblewrap is not installed")
    # Private scratch mounts first: binds that follow may live under them (a course cloned in /tmp,
    # a venv in /home), and a later mount on the same path would hide them.
    args = [exe, *_namespace_args(), "--clearenv",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/home", "--dir", "/home/student",
            "--tmpfs", "/run", "--tmpfs", "/var/tmp"]
    for p in _system_ro():
        args += ["--ro-bind-try", p, p]
    for p in cfg.ro:
        args += ["--ro-bind", p, p]
    for p in [cfg.workdir, *cfg.rw]:
        args += ["--bind", p, p]
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": "/home/student",
           "LANG": "C.UTF-8", "TMPDIR": "/tmp", **cfg.env}
    for k, v in env.items():
        args += ["--setenv", k, v]
    args += ["--chdir", cfg.workdir, "--hostname", "sandbox"]
    return args


def set_limits(limits: Limits) -> None:
    import resource

    def lim(which, value):
        try:
            hard = resource.getrlimit(which)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass

    lim(resource.RLIMIT_AS, int(limits.memory_bytes))
    lim(resource.RLIMIT_NPROC, int(limits.max_processes))
    lim(resource.RLIMIT_FSIZE, int(limits.file_bytes))
    lim(resource.RLIMIT_CORE, 0)
    # CPU seconds: a safety net behind the wall-clock limits (a busy loop ignores interrupts in C code).
    lim(resource.RLIMIT_CPU, int(limits.notebook_timeout) + 60)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv or argv.index("--") != 1:
        sys.exit("usage: python -m course_lib.grading.sandbox CONFIG.json -- COMMAND ...")
    cfg = SandboxConfig.load(Path(argv[0]))
    cmd = argv[2:]
    # ipykernel watches its parent by PID; in a new PID namespace that PID means nothing.
    os.environ.pop("JPY_PARENT_PID", None)
    if cfg.isolate:
        full = [*bwrap_args(cfg), "--", *cmd]
    else:
        os.chdir(cfg.workdir)
        os.environ.update(cfg.env)
        full = cmd
    for cg in cfg.cgroups:  # join before exec: every process of the sandbox is counted and can be killed
        for name in ("cgroup.procs", "tasks"):
            f = Path(cg) / name
            if f.exists():
                try:
                    f.write_text(str(os.getpid()))
                    break
                except OSError:
                    pass
    if cfg.log_file:  # the kernel's own stdout/stderr (start-up banners, C-level prints) go to a file
        fd = os.open(cfg.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    set_limits(cfg.limits)
    os.execvp(full[0], full)


if __name__ == "__main__":
    main()


# ----------------------------------------------------------------------------- cgroups
class Cgroups:
    """Per-sandbox control groups, where this machine lets us create them (root, cgroup v1 or v2).

    ``pids.max`` bounds the processes of the whole sandbox (``RLIMIT_NPROC`` does not bind root),
    ``memory`` bounds its total memory, and :meth:`kill` ends every process in it at once.
    """

    def __init__(self, name: str, limits: Limits):
        self.paths: list[Path] = []
        self.memory: Path | None = None
        self.name = name
        unified = Path("/sys/fs/cgroup/cgroup.controllers")
        try:
            if unified.exists():
                base = Path("/sys/fs/cgroup") / _own_cgroup("")
                path = base / name
                path.mkdir()
                self.paths.append(path)
                _try_write(path / "pids.max", str(limits.max_processes))
                if limits.cpus > 0:
                    _try_write(path / "cpu.max", f"{int(limits.cpus * 100_000)} 100000")
                if _try_write(path / "memory.max", str(limits.memory_bytes)):
                    _try_write(path / "memory.swap.max", "0")
                    self.memory = path
            else:
                cpu = {"cpu.cfs_period_us": 100_000, "cpu.cfs_quota_us": int(limits.cpus * 100_000)} if limits.cpus > 0 else {}
                for ctrl, files in (("pids", {"pids.max": limits.max_processes}),
                                    ("memory", {"memory.limit_in_bytes": limits.memory_bytes}),
                                    ("cpu", cpu)):
                    if not files:
                        continue
                    root = Path("/sys/fs/cgroup") / ctrl
                    if not root.is_dir():
                        continue
                    path = root / _own_cgroup(ctrl) / name
                    try:
                        path.mkdir()
                    except OSError:
                        continue
                    self.paths.append(path)
                    for f, v in files.items():
                        _try_write(path / f, str(v))
                    _try_write(path / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
                    if ctrl == "memory":
                        self.memory = path
        except OSError:
            pass

    def procs(self) -> set[int]:
        pids: set[int] = set()
        for p in self.paths:
            for name in ("cgroup.procs", "tasks"):
                with contextlib_suppress():
                    pids |= {int(x) for x in (p / name).read_text().split()}
        return pids

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer ended a process of this sandbox (memory limit hit)."""
        if self.memory is None:
            return False
        for f in ("memory.events", "memory.oom_control"):
            with contextlib_suppress():
                for line in (self.memory / f).read_text().splitlines():
                    key, _, val = line.partition(" ")
                    if key in ("oom_kill",) and int(val or 0) > 0:
                        return True
        with contextlib_suppress():
            return int((self.memory / "memory.failcnt").read_text()) > 0 and not self.procs()
        return False

    def pids_exhausted(self) -> bool:
        for p in self.paths:
            with contextlib_suppress():
                for line in (p / "pids.events").read_text().splitlines():
                    key, _, val = line.partition(" ")
                    if key == "max" and int(val or 0) > 0:
                        return True
        return False

    def kill(self) -> None:
        import signal
        import time

        for p in self.paths:
            if (p / "cgroup.kill").exists():
                _try_write(p / "cgroup.kill", "1")
        for _ in range(50):
            pids = self.procs()
            if not pids:
                return
            for pid in pids:
                with contextlib_suppress():
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def remove(self) -> None:
        import time

        self.kill()
        for p in self.paths:
            for _ in range(20):
                try:
                    p.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def _own_cgroup(controller: str) -> str:
    """This process's cgroup path for ``controller`` (v1) or the unified hierarchy (``""``)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if (controller and controller in ctrls.split(",")) or (not controller and ctrls == ""):
            return path.lstrip("/")
    return ""


def _try_write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


class contextlib_suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], (OSError, ValueError))
