"""What one execution leaves behind is gone before the next one runs in the same container.

Each snippet plants something and ends normally (so the container is reused); the probe that
follows runs in that same container and must find none of it (tests/security/probe.py checks
processes, /tmp, /dev/shm, /dev/mqueue, SysV IPC, the working directory and the environment).
"""

import base64
import uuid

import pytest

from tests.security.probe import Warm

LEFTOVERS = {
    "double-forked daemon": (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        for fd in (0, 1, 2):\n"
        "            os.close(fd)\n"
        "        while True:\n"
        "            time.sleep(1)\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "print('planted')\n"),
    "setsid": (
        "import subprocess\n"
        "subprocess.Popen(['setsid', 'sleep', '3600'], stdout=subprocess.DEVNULL,\n"
        "                 stderr=subprocess.DEVNULL, start_new_session=True)\n"
        "print('planted')\n"),
    "nohup": (
        "import os\n"
        "os.system('nohup sleep 3600 >/dev/null 2>&1 &')\n"
        "print('planted')\n"),
    "process group of its own, renamed": (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setpgid(0, 0)\n"
        "    open('/proc/self/comm', 'w').write('kworker/0:1')\n"
        "    while True:\n"
        "        time.sleep(1)\n"
        "print('planted')\n"),
    "a daemon that keeps forking": (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    while True:\n"
        "        if os.fork():\n"
        "            os._exit(0)\n"
        "        time.sleep(0.001)\n"
        "time.sleep(0.1)\n"
        "print('planted')\n"),
    "files in /tmp and /dev/shm": (
        "import os\n"
        "open('/tmp/left.txt', 'w').write('x')\n"
        "open('/dev/shm/left', 'w').write('x')\n"
        "os.makedirs('/tmp/a/b/c')\n"
        "open('/tmp/a/b/c/deep', 'w').write('x')\n"
        "os.mkfifo('/tmp/fifo')\n"
        "os.symlink('/etc/passwd', '/tmp/link')\n"
        "open('/tmp/.hidden', 'w').write('x')\n"
        "print('planted')\n"),
    "a locked directory": (
        "import os\n"
        "os.makedirs('/tmp/locked/inner')\n"
        "open('/tmp/locked/inner/f', 'w').write('x')\n"
        "os.chmod('/tmp/locked/inner', 0)\n"
        "os.chmod('/tmp/locked', 0)\n"
        "print('planted')\n"),
    "files in the working directory": (
        "import os\n"
        "open('out.txt', 'w').write('x')\n"
        "os.makedirs('pkg')\n"
        "open('pkg/__init__.py', 'w').write('raise SystemExit(9)')\n"
        "open('sitecustomize.py', 'w').write('raise SystemExit(9)')\n"
        "print('planted')\n"),
    "chdir and env var": (
        "import os\n"
        "os.environ['LEFT_BEHIND'] = '1'\n"
        "os.putenv('PUT_BEHIND', '1')\n"
        "os.environ['PATH'] = '/tmp/evil:' + os.environ['PATH']\n"
        "os.environ['PYTHONSTARTUP'] = '/tmp/evil.py'\n"
        "os.chdir('/tmp')\n"
        "print('planted')\n"),
    "SysV shared memory, queue and semaphores": (
        "import ctypes, ctypes.util\n"
        "libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)\n"
        "IPC_CREAT = 0o1000\n"
        "assert libc.shmget(0x5A5A, 1 << 20, IPC_CREAT | 0o666) >= 0\n"
        "assert libc.shmget(0, 4096, IPC_CREAT | 0o600) >= 0\n"
        "assert libc.msgget(0x5B5B, IPC_CREAT | 0o666) >= 0\n"
        "assert libc.semget(0x5C5C, 4, IPC_CREAT | 0o666) >= 0\n"
        "print('planted')\n"),
    "POSIX message queue and semaphore": (
        "import ctypes, ctypes.util, os\n"
        "rt = ctypes.CDLL(ctypes.util.find_library('rt'), use_errno=True)\n"
        "rt.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]\n"
        "mq = rt.mq_open(b'/leftover', os.O_CREAT | os.O_RDWR, 0o666, None)\n"
        "assert mq >= 0, ctypes.get_errno()\n"
        "assert rt.mq_send(mq, b'hello', 5, 0) == 0\n"
        "assert os.listdir('/dev/mqueue') == ['leftover']\n"
        "pt = ctypes.CDLL(ctypes.util.find_library('pthread'), use_errno=True)\n"
        "pt.sem_open.restype = ctypes.c_void_p\n"
        "pt.sem_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint]\n"
        "assert pt.sem_open(b'/leftsem', os.O_CREAT, 0o666, 1)\n"
        "print('planted')\n"),
}


@pytest.mark.parametrize("code", LEFTOVERS.values(), ids=LEFTOVERS.keys())
def test_nothing_survives_into_the_next_execution(warm: Warm, code: str) -> None:
    result = warm.case(code)
    assert result["outcome"] == "ok", result
    assert result["stdout"] == "planted\n"


@pytest.mark.parametrize("fresh", [False, True])
def test_a_run_killed_at_its_timeout_leaves_nothing_in_its_reused_container(
        warm: Warm, fresh: bool) -> None:
    """A timeout does not cost a container: the same one serves the next run, clean (the probes
    find neither the daemon, nor the files, nor the loop)."""
    code = (LEFTOVERS["double-forked daemon"] + LEFTOVERS["files in /tmp and /dev/shm"]
            + "open('left-in-workdir', 'w').write('x')\nimport sys; sys.stdout.flush()\n"
            + "while True: pass\n")
    result = warm.case(code, timeout=1, fresh_interpreter=fresh)
    assert result["outcome"] == "timeout", result
    assert result["stdout"] == "planted\nplanted\n"


def test_fresh_interpreter_leaves_nothing_either(warm: Warm) -> None:
    result = warm.case(LEFTOVERS["double-forked daemon"], fresh_interpreter=True)
    assert result["outcome"] == "ok", result


def test_planted_modules_are_not_imported_next_time(warm: Warm) -> None:
    """A module planted in /tmp or the working directory is gone: the next import fails."""
    warm.case("open('/tmp/planted_mod.py', 'w').write('print(1)')\n"
              "open('planted_here.py', 'w').write('print(2)')\n")
    for mode in (False, True):
        result = warm.run("import sys; sys.path.append('/tmp')\nimport planted_mod\n",
                          fresh_interpreter=mode)
        assert "ModuleNotFoundError" in result["stderr"], result
        result = warm.run("import planted_here\n", fresh_interpreter=mode)
        assert "ModuleNotFoundError" in result["stderr"], result


def test_python_state_does_not_carry_over(warm: Warm) -> None:
    """Forked runs share the warm interpreter's memory image, never each other's changes."""
    warm.case("import builtins, json, numpy\n"
              "builtins.print = None\n"
              "json.dumps = None\n"
              "numpy.pi = 3\n"
              "import sys; sys.modules['os'].getcwd = None\n"
              "sys.setrecursionlimit(50)\n")
    result = warm.run("import numpy, sys\nprint(numpy.pi > 3.14, sys.getrecursionlimit() > 50)")
    assert result["stdout"] == "True True\n"


MEMORY_SEARCH = r'''
import ctypes, re, socket
found = set()
for line in open("/proc/self/maps").read().splitlines():
    span, perms, *rest = line.split()
    path = rest[3] if len(rest) > 3 else ""
    if not perms.startswith("rw") or path not in ("", "[heap]", "[stack]"):
        continue  # request data lives in the heap and in anonymous mappings
    start, end = (int(x, 16) for x in span.split("-"))
    data = ctypes.string_at(start, end - start)
    found.update(m.decode() for m in re.findall(b"TENANT-A:([0-9a-f]{32})", data))
    found.update(m.decode() for m in re.findall(b"([0-9a-f]{32})!", data))
print(socket.gethostname(), *sorted(found))
'''


def test_the_next_execution_finds_nothing_of_the_previous_one_in_its_memory(warm: Warm) -> None:
    """The child is forked from a template that never held a request or an output: the
    previous caller's code, stdin and output are not in the next one's memory, not even in
    freed memory or in frames up the stack."""
    in_code, in_stdin, in_output, in_file = (uuid.uuid4().hex for _ in range(4))
    first = warm.run(f"# TENANT-A:{in_code}\nimport socket, sys\n"
                     f"open('out.txt', 'w').write('TENANT-A:{in_file}')\n"
                     f"print(socket.gethostname(), sys.stdin.read() + '!', 'TENANT-A:{in_output}')",
                     stdin=in_stdin, return_files=["out.txt"])
    container, *rest = first["stdout"].split()
    assert rest == [f"{in_stdin}!", f"TENANT-A:{in_output}"], first
    assert base64.b64decode(first["files"]["out.txt"]["base64"]) == f"TENANT-A:{in_file}".encode()
    second = warm.run(MEMORY_SEARCH, timeout=60)
    assert second["outcome"] == "ok", second["stderr"]
    host, *seen = second["stdout"].split()
    assert host == container, "the second execution ran in another container"
    assert not {in_code, in_stdin, in_output, in_file} & set(seen), seen
