"""Exhausting resources: processes, memory, CPU, time, output, disk; writing outside the sandbox.

Each hostile snippet runs in the one warm container of `warm`, between two normal executions
that must answer right and find the sandbox clean (tests/security/probe.py).
"""

import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.security.probe import Warm
from tests.support import run

FORK_BOMBS = {
    "fork loop": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "recursive fork, no mercy": "import os\nwhile True:\n    os.fork()\n",
    "thread loop": (
        "import threading, time\n"
        "while True:\n"
        "    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"),
    "subprocess loop": (
        "import subprocess, sys\n"
        "kids = []\n"
        "while True:\n"
        "    kids.append(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']))\n"),
    "shell fork bomb": "import os\nos.system(':(){ :|:& };:')\nimport time; time.sleep(600)\n",
}


@pytest.mark.parametrize("code", FORK_BOMBS.values(), ids=FORK_BOMBS.keys())
def test_fork_bombs_hit_the_pids_limit(warm: Warm, code: str) -> None:
    result = warm.case(code, timeout=3)
    assert result["outcome"] in ("timeout", "error"), result
    assert warm.service.workers[0].poll() is None
    warm.service.wait_ready(min_idle=1, timeout=60)


def test_fork_bomb_in_a_fresh_interpreter(warm: Warm) -> None:
    result = warm.case(FORK_BOMBS["fork loop"], timeout=3, fresh_interpreter=True)
    assert result["outcome"] == "timeout", result


MEMORY_BOMBS = {
    "numpy pages touched": "import numpy as np\na = np.ones(1 << 30)\nprint(a.sum())\n",
    "string doubling": "s = 'x'\nwhile True:\n    s += s\n",
    "in a child the parent waits for": (
        "import os\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    chunks = []\n"
        "    while True:\n"
        "        chunks.append(bytearray(16 << 20))\n"
        "os.waitpid(pid, 0)\n"
        "print('parent survived')\n"),
    "in threads": (
        "import threading\n"
        "hoard = []\n"
        "def eat():\n"
        "    while True:\n"
        "        hoard.append(bytearray(8 << 20))\n"
        "ts = [threading.Thread(target=eat) for _ in range(4)]\n"
        "[t.start() for t in ts]\n[t.join() for t in ts]\n"),
    "anonymous mmap touched": (
        "import mmap\n"
        "m = mmap.mmap(-1, 4 << 30)\n"
        "for i in range(0, len(m), 4096):\n"
        "    m[i] = 1\n"),
}


@pytest.mark.parametrize("code", MEMORY_BOMBS.values(), ids=MEMORY_BOMBS.keys())
def test_memory_bombs(warm: Warm, client: httpx.Client, code: str) -> None:
    """The bomb goes off in the warm container while the shared service answers normally."""
    def normal(i: int) -> str:
        return run(client, f"print(sum(range({i})))")["stdout"]

    with ThreadPoolExecutor(4) as pool:
        others = pool.map(normal, range(1000, 1012))
        result = warm.case(code, timeout=20, memory_mb=128)
        assert list(others) == [f"{sum(range(i))}\n" for i in range(1000, 1012)]
    assert result["outcome"] == "memory_limit", result


CPU_BURNS = {
    "threads": (
        "import threading\n"
        "def burn():\n"
        "    while True:\n"
        "        pass\n"
        "for _ in range(4):\n"
        "    threading.Thread(target=burn).start()\n"),
    "in a child, parent sleeping": (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    while True:\n"
        "        pass\n"
        "time.sleep(3600)\n"),
    "SIGXCPU ignored": (
        "import signal\n"
        "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
        "x = 0\n"
        "while True:\n"
        "    x += 1\n"),
    "numpy": "import numpy as np\na = np.random.rand(400, 400)\nwhile True:\n    np.dot(a, a)\n",
}


@pytest.mark.parametrize("code", CPU_BURNS.values(), ids=CPU_BURNS.keys())
def test_cpu_burns_end_at_the_timeout(warm: Warm, code: str) -> None:
    result = warm.case(code, timeout=1.5)
    assert result["outcome"] == "timeout", result
    assert result["signal"] == 9


SLEEPERS = {
    "SIGTERM ignored": (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(3600)\n"),
    "every catchable signal ignored": (
        "import signal, time\n"
        "for s in signal.valid_signals():\n"
        "    try:\n"
        "        signal.signal(s, signal.SIG_IGN)\n"
        "    except (OSError, ValueError):\n"
        "        pass\n"
        "time.sleep(3600)\n"),
    "signals blocked": (
        "import signal, time\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())\n"
        "time.sleep(3600)\n"),
    "child in its own session ignoring SIGTERM and SIGHUP": (
        "import os, signal, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "    time.sleep(3600)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "time.sleep(3600)\n"),
}


@pytest.mark.parametrize("code", SLEEPERS.values(), ids=SLEEPERS.keys())
def test_sleepers_are_killed_at_the_limit(warm: Warm, code: str) -> None:
    result = warm.case(code, timeout=1)
    assert result["outcome"] == "timeout", result
    assert result["signal"] == 9


def test_stderr_flood(warm: Warm) -> None:
    code = "import sys\nprint('kept', flush=True)\nwhile True:\n    sys.stderr.write('e' * 1000)\n"
    result = warm.case(code, max_output_bytes=30_000)
    assert result["outcome"] == "output_limit"
    assert (result["stdout"], result["stdout_truncated"]) == ("kept\n", False)
    assert result["stderr"] == "e" * 30_000
    assert result["stderr_truncated"] is True


def test_one_gigantic_write_without_newline(warm: Warm) -> None:
    code = "import os\nos.write(1, b'g' * (64 << 20))\n"
    result = warm.case(code, max_output_bytes=100_000)
    assert result["outcome"] == "output_limit"
    assert result["stdout"] == "g" * 100_000
    assert result["stdout_truncated"] is True


def test_output_from_a_daemon_after_the_parent_exits(warm: Warm) -> None:
    code = ("import os, sys\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    while True:\n"
            "        os.write(1, b'd' * 65536)\n"
            "print('parent done')\n")
    result = warm.case(code, max_output_bytes=1 << 20, may_replace=True)
    assert result["outcome"] in ("ok", "output_limit"), result
    # The parent's line lands anywhere among the daemon's writes (or past the cap, or cut by it).
    line = "parent done\n"
    rest = result["stdout"].lstrip("d")
    assert rest == "" or (line.startswith(rest[:len(line)]) and set(rest[len(line):]) <= {"d"})
    assert len(result["stdout"]) <= 1 << 20


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_worker_memory_stays_flat_under_floods(warm: Warm) -> None:
    """Floods at the largest cap do not grow the worker: output is bounded at the source."""
    worker = warm.service.workers[0].pid
    code = "while True:\n    print('f' * 4095)\n"
    warm.run(code, max_output_bytes=8 << 20)
    before = rss_kib(worker)
    for _ in range(6):
        result = warm.run(code, max_output_bytes=8 << 20)
        assert result["outcome"] == "output_limit"
        assert len(result["stdout"]) == 8 << 20
    assert rss_kib(worker) - before < 64 << 10  # 6 x 8 MiB passed through; far less stayed
    warm.check_after(result)


DISK_FILLS = {
    "one huge file": (
        "import errno, os\n"
        "fd = os.open('big', os.O_CREAT | os.O_WRONLY)\n"
        "try:\n"
        "    while True:\n"
        "        os.write(fd, b'\\0' * (1 << 20))\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"),
    "fallocate": (
        "import errno, os\n"
        "fd = os.open('/tmp/alloc', os.O_CREAT | os.O_WRONLY)\n"
        "try:\n"
        "    os.posix_fallocate(fd, 0, 10 << 30)\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"),
    "/dev/shm": (
        "import errno, os\n"
        "fd = os.open('/dev/shm/fill', os.O_CREAT | os.O_WRONLY)\n"
        "try:\n"
        "    while True:\n"
        "        os.write(fd, b'\\1' * (1 << 20))\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"),
}


@pytest.mark.parametrize("code", DISK_FILLS.values(), ids=DISK_FILLS.keys())
def test_disk_fill_fails_at_the_tmpfs_size(warm: Warm, code: str) -> None:
    signal_xfsz = 25
    result = warm.case(code, timeout=20)
    if result["signal"] == signal_xfsz:  # the size rlimit's signal, when not ignored
        assert result["outcome"] == "error"
    else:
        assert result["outcome"] == "ok", result
        assert result["stdout"].strip() in ("ENOSPC", "EFBIG"), result
    assert warm.baseline.details["tmp_size"] <= 64 << 20


def test_a_million_small_files(warm: Warm) -> None:
    code = ("import os\n"
            "n = 0\n"
            "try:\n"
            "    for n in range(1_000_000):\n"
            "        open(f'f{n}', 'w').close()\n"
            "except OSError as exc:\n"
            "    print('stopped', n, exc.errno)\n")
    result = warm.case(code, timeout=6, may_replace=True)
    assert result["outcome"] in ("ok", "timeout", "memory_limit"), result


def test_a_very_deep_directory_tree(warm: Warm) -> None:
    """Deeper than PATH_MAX: the clean-up cannot walk it by path, so the container is replaced."""
    code = ("import os\n"
            "for _ in range(3000):\n"
            "    os.mkdir('d' * 20)\n"
            "    os.chdir('d' * 20)\n"
            "print(len(os.getcwd()))\n")
    result = warm.case(code, timeout=20, may_replace=True)
    assert result["outcome"] == "ok", result


@pytest.mark.parametrize("target", ["/etc/passwd", "/etc/new", "/usr/bin/python3", "/newfile",
                                    "/opt/runner/runner.py", "/opt/runner/sandbox_runner/zygote.py",
                                    "/opt/runner/sandbox_runner/planted.py", "/var/tmp/x", "/root/x",
                                    "/proc/sys/kernel/hostname", "/sys/kernel/profiling"])
def test_writes_outside_the_working_directory_fail(warm: Warm, target: str) -> None:
    code = ("import errno\n"
            "try:\n"
            f"    open({target!r}, 'w').write('owned')\n"
            "    print('WROTE')\n"
            "except OSError as exc:\n"
            "    print(errno.errorcode[exc.errno])\n")
    result = warm.run(code)
    assert result["stdout"].strip() in ("EROFS", "EACCES", "EPERM", "ENOENT"), result
    assert "WROTE" not in result["stdout"]


def test_metadata_changes_outside_fail(warm: Warm) -> None:
    code = ("import errno, os\n"
            "for call in (lambda: os.chmod('/tmp', 0o777), lambda: os.chown('/tmp', 10001, 10001),\n"
            "             lambda: os.rename('/opt/runner', '/opt/r2'), lambda: os.unlink('/bin/sh'),\n"
            "             lambda: os.symlink('/etc', '/usr/evil'), lambda: os.mkdir('/srv/x')):\n"
            "    try:\n"
            "        call()\n"
            "        print('DONE')\n"
            "    except OSError as exc:\n"
            "        print(errno.errorcode[exc.errno])\n")
    result = warm.case(code)
    assert "DONE" not in result["stdout"], result
    assert set(result["stdout"].split()) <= {"EROFS", "EPERM", "EACCES"}, result


def test_host_is_untouched() -> None:
    """Nothing the snippets above wrote at absolute paths exists on the host."""
    assert not any(os.path.exists(p) for p in ("/newfile", "/etc/new", "/opt/r2", "/usr/evil"))
