"""The sandbox runs model code in a separate, limited process and always cleans up after it.

Timing is never asserted: timeouts are checked through ``timed_out``, not the clock.
"""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest

from rankgate.eval.sandbox import run_python


def run(source: str, **kwargs) -> object:
    return run_python(textwrap.dedent(source), **kwargs)


def test_clean_exit_passes_and_captures_stdout():
    r = run("print('hello from the sandbox')", timeout_s=10)
    assert r.passed and r.returncode == 0 and not r.timed_out
    assert "hello from the sandbox" in r.stdout_tail
    assert r.reason == "exited 0"


def test_uncaught_exception_fails_with_the_traceback_in_stderr():
    r = run("assert 1 + 1 == 3, 'arithmetic is broken'")
    assert not r.passed and r.returncode == 1 and not r.timed_out
    assert "AssertionError: arithmetic is broken" in r.stderr_tail
    assert r.reason == "exit status 1: AssertionError: arithmetic is broken"


def test_syntax_error_is_reported_not_raised():
    r = run("def broken(:\n    pass\n")
    assert not r.passed
    assert "SyntaxError" in r.reason


def test_infinite_loop_is_killed_at_the_timeout():
    r = run("while True:\n    pass\n", timeout_s=1)
    assert r.timed_out and not r.passed
    assert r.reason.startswith("timed out")


def test_sleeping_process_is_killed_at_the_timeout():
    r = run("import time\ntime.sleep(600)\n", timeout_s=1)
    assert r.timed_out and not r.passed


def test_fork_bomb_is_contained_and_the_call_returns():
    r = run("""
        import os
        while True:
            os.fork()
    """, timeout_s=2)
    assert not r.passed
    assert "os.fork is disabled" in r.stderr_tail
    assert run("print('still here')").passed  # the host still starts processes


def test_forks_that_get_past_the_prelude_die_with_the_process_group():
    # Re-importing posix undoes the prelude (the docstring says so). The bomb is bounded
    # (2**5 processes) so a regression cannot take the test machine down.
    r = run("""
        import sys, time
        del sys.modules["posix"]
        import posix
        for _ in range(5):
            posix.fork()
        print(posix.getpid(), flush=True)
        time.sleep(600)
    """, timeout_s=2)
    assert r.timed_out and not r.passed
    pids = [int(line) for line in r.stdout_tail.split()]
    assert len(pids) == 32
    for pid in pids:
        assert _gone_or_zombie(pid), f"sandboxed process {pid} survived"


def test_children_left_behind_after_a_clean_exit_are_killed():
    r = run("""
        import sys, time
        del sys.modules["posix"]
        import posix
        if posix.fork() == 0:
            print(posix.getpid(), flush=True)
            time.sleep(600)
            posix._exit(0)
        time.sleep(0.2)
    """, timeout_s=10)
    assert r.passed
    (pid,) = [int(line) for line in r.stdout_tail.split()]
    assert _gone_or_zombie(pid)


def test_os_system_is_blocked(tmp_path: Path):
    marker = tmp_path / "pwned"
    r = run(f"import os\nos.system('touch {marker}')\n")
    assert not r.passed
    assert "os.system is disabled" in r.stderr_tail
    assert not marker.exists()


def test_subprocess_is_blocked(tmp_path: Path):
    marker = tmp_path / "pwned"
    r = run(f"import subprocess\nsubprocess.run(['touch', '{marker}'])\n")
    assert not r.passed
    assert "subprocess.Popen is disabled" in r.stderr_tail
    assert not marker.exists()


def test_deleting_a_file_outside_the_working_directory_is_blocked(tmp_path: Path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    r = run(f"import os\nos.remove({str(victim)!r})\n")
    assert not r.passed
    assert "PermissionError" in r.stderr_tail
    assert victim.read_text() == "keep me"


def test_removing_a_directory_tree_outside_the_working_directory_is_blocked(tmp_path: Path):
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "leaf.txt").write_text("x")
    r = run(f"import shutil\nshutil.rmtree({str(tmp_path / 'tree')!r})\n")
    assert not r.passed
    assert (tmp_path / "tree" / "leaf.txt").exists()


def test_writing_a_file_outside_the_working_directory_is_blocked(tmp_path: Path):
    target = tmp_path / "overwritten.txt"
    target.write_text("original")
    r = run(f"open({str(target)!r}, 'w').write('garbage')\n")
    assert not r.passed
    assert target.read_text() == "original"


def test_files_inside_the_working_directory_can_be_written_and_deleted():
    r = run("""
        import os, shutil, tempfile
        with open("scratch.txt", "w") as f:
            f.write("data")
        os.remove("scratch.txt")
        d = tempfile.mkdtemp()
        open(os.path.join(d, "x"), "w").close()
        shutil.rmtree(d)
        print("ok")
    """)
    assert r.passed, r.stderr_tail
    assert "ok" in r.stdout_tail


def test_socket_connect_is_blocked():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        r = run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n")
        assert not r.passed
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected


def test_memory_limit_stops_a_2gb_allocation():
    r = run("block = bytearray(2 * 1024 ** 3)\nprint('allocated')\n", memory_mb=512)
    assert not r.passed
    assert "allocated" not in r.stdout_tail
    assert "MemoryError" in r.stderr_tail


def test_endless_output_is_cut_off_by_the_file_size_limit():
    r = run("while True:\n    print('x' * 10000)\n", timeout_s=30)
    assert not r.passed and not r.timed_out
    assert len(r.stdout_tail) <= 4000


def test_no_temporary_directory_is_left_behind(tmp_path: Path):
    r = run("import os\nopen('junk', 'w').write('x')\nprint(os.getcwd())\n", tmp_root=tmp_path)
    assert r.passed
    workdir = Path(r.stdout_tail.strip())
    assert workdir.is_relative_to(tmp_path)
    assert not workdir.exists()
    assert list(tmp_path.iterdir()) == []


def test_no_temporary_directory_is_left_behind_after_a_timeout(tmp_path: Path):
    r = run("open('junk', 'w').write('x')\nwhile True:\n    pass\n", timeout_s=1,
            tmp_root=tmp_path)
    assert r.timed_out
    assert list(tmp_path.iterdir()) == []


def test_environment_is_minimal(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    r = run("""
        import os
        print(sorted(os.environ))
        print(os.environ["HOME"] == os.getcwd())
    """)
    assert r.passed
    assert "HTTPS_PROXY" not in r.stdout_tail and "OPENAI_API_KEY" not in r.stdout_tail
    assert "True" in r.stdout_tail


def test_interpreter_is_isolated_from_the_callers_packages(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[2] / "src"))
    r = run("import rankgate\n")
    assert not r.passed
    assert "ModuleNotFoundError" in r.stderr_tail


def test_stdin_is_empty_and_the_source_is_not_on_disk():
    r = run("""
        import os
        print(sorted(os.listdir('.')))
        input()
    """)
    assert not r.passed
    assert "[]" in r.stdout_tail
    assert "EOFError" in r.stderr_tail


def test_standard_library_and_threads_work():
    r = run("""
        import collections, decimal, fractions, heapq, itertools, json, math, re, statistics
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(2) as ex:
            print(sum(ex.map(math.isqrt, range(100))))
    """)
    assert r.passed, r.stderr_tail


def test_nonsensical_limits_are_rejected():
    with pytest.raises(ValueError):
        run_python("pass", timeout_s=0)
    with pytest.raises(ValueError):
        run_python("pass", memory_mb=0)


def _gone_or_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.fixture(autouse=True)
def _linux_only():
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("the sandbox targets Linux")
