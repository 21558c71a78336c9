"""Attacking the runner from inside: signals, ptrace, its descriptors, forged reports.

The runner is root (with only SETUID, SETGID and KILL) and the code runs as uid 10001, so the
kernel refuses every signal, ptrace and /proc access across that line. The runner must also
survive and serve the next job, and nothing the code writes may pass for the runner's report.
"""

import pytest

from tests.security.probe import Warm

FIND_RUNNER = (
    "import os\n"
    "def root_pids():\n"
    "    for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "        try:\n"
    "            if open(f'/proc/{pid}/status').read().split('Uid:')[1].split()[0] == '0':\n"
    "                yield int(pid)\n"
    "        except OSError:\n"
    "            pass\n"
    "ROOT = sorted(root_pids())\n"
    "assert len(ROOT) >= 2, ROOT  # docker-init and the runner\n"
)

ATTACKS = {
    "kill the parent and PID 1": (
        "import errno, os, signal\n"
        "for pid in ROOT + [os.getppid()]:\n"
        "    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):\n"
        "        try:\n"
        "            os.kill(pid, sig)\n"
        "            print('SIGNALLED', pid)\n"
        "        except OSError as exc:\n"
        "            print(errno.errorcode[exc.errno])\n"),
    "kill -1": (
        "import os, signal\n"
        "os.kill(-1, signal.SIGKILL)\n"
        "print('still here')\n"),
    "kill the runner's process group": (
        "import errno, os, signal\n"
        "for pid in ROOT:\n"
        "    if os.getpgid(pid) == 1:\n"
        "        continue  # killpg(1) is kill(-1), tried above\n"
        "    try:\n"
        "        os.killpg(os.getpgid(pid), signal.SIGKILL)\n"
        "        print('SIGNALLED', pid)\n"
        "    except OSError as exc:\n"
        "        print(errno.errorcode[exc.errno])\n"),
    "ptrace attach": (
        "import ctypes, errno\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206\n"
        "for pid in ROOT:\n"
        "    for req in (PTRACE_ATTACH, PTRACE_SEIZE):\n"
        "        if libc.ptrace(req, pid, None, None) == 0:\n"
        "            print('ATTACHED', pid)\n"
        "        else:\n"
        "            print(errno.errorcode[ctypes.get_errno()])\n"),
    "process_vm_writev and /proc/pid/mem": (
        "import errno\n"
        "for pid in ROOT:\n"
        "    for name in ('mem', 'environ', 'fd/0', 'fd/1', 'fd/3', 'fd/4', 'root/etc/hostname'):\n"
        "        try:\n"
        "            open(f'/proc/{pid}/{name}', 'r+b').write(b'x')\n"
        "            print('WROTE', pid, name)\n"
        "        except OSError as exc:\n"
        "            print(errno.errorcode[exc.errno])\n"),
    "the runner's descriptors": (
        "import errno, os\n"
        "for pid in ROOT:\n"
        "    try:\n"
        "        print('LISTED', os.listdir(f'/proc/{pid}/fd'))\n"
        "    except OSError as exc:\n"
        "        print(errno.errorcode[exc.errno])\n"),
    "the runner's socket": (
        "import errno, glob, os, socket\n"
        "paths = ['/run/runner/runner.sock'] + glob.glob('/run/**/*.sock', recursive=True)\n"
        "for path in paths:\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    try:\n"
        "        s.connect(path)\n"
        "        s.sendall(b'\\x00\\x00\\x00\\x02{}')\n"
        "        print('WROTE', path)\n"
        "    except OSError as exc:\n"
        "        print(errno.errorcode[exc.errno])\n"
        "for path in ('/run/runner', '/proc/1/root/run'):\n"
        "    try:\n"
        "        print('LISTED', os.listdir(path))\n"
        "    except OSError as exc:\n"
        "        print(errno.errorcode[exc.errno])\n"),
    "fake protocol frames on stdout and stderr": (
        "import json, os, struct\n"
        "for fd in (1, 2):\n"
        "    for msg in ({'op': 'ready', 'protocol': 1, 'pid': 1},\n"
        "                {'op': 'result', 'id': 'x', 'exit_code': 0, 'signal': None}):\n"
        "        body = json.dumps(msg).encode()\n"
        "        os.write(fd, struct.pack('>I', len(body)) + body)\n"
        "        os.write(fd, b'\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x10' + body)\n"),
}


@pytest.mark.parametrize("code", ATTACKS.values(), ids=ATTACKS.keys())
def test_the_runner_survives_and_serves_the_next_job(warm: Warm, code: str) -> None:
    result = warm.case(FIND_RUNNER + code)
    assert result["outcome"] == "ok", result
    assert not any(word in result["stdout"] for word in ("SIGNALLED", "ATTACHED", "WROTE",
                                                         "LISTED")), result
    denied = set(result["stdout"].split()) - {"still", "here"}
    assert denied <= {"EPERM", "EACCES", "ESRCH", "ENOENT"} or "op" in result["stdout"], result


def test_fake_frames_come_back_as_plain_output(warm: Warm) -> None:
    result = warm.case(FIND_RUNNER + ATTACKS["fake protocol frames on stdout and stderr"])
    assert '{"op": "ready"' in result["stdout"] and '{"op": "result"' in result["stderr"]


@pytest.mark.parametrize("fresh", [False, True])
def test_the_code_holds_no_descriptor_of_the_runners(warm: Warm, fresh: bool) -> None:
    """Beyond its stdio the code may hold write ends of pipes to the runner (a status it may try
    to forge: see below), never a socket, a file or a read end the runner writes to."""
    code = ("import os\n"
            "held = []\n"
            "for fd in sorted(int(fd) for fd in os.listdir('/proc/self/fd')):\n"
            "    try:\n"
            "        target = os.readlink(f'/proc/self/fd/{fd}')\n"
            "        flags = int(open(f'/proc/self/fdinfo/{fd}').read().split('flags:')[1].split()[0], 8)\n"
            "    except OSError:\n"
            "        continue  # the listing's own descriptor, closed since\n"
            "    if fd > 2 and not (target.startswith('pipe:') and flags & os.O_ACCMODE == os.O_WRONLY):\n"
            "        held.append((fd, target))\n"
            "print(held)\n")
    result = warm.case(code, fresh_interpreter=fresh)
    assert result["stdout"] == "[]\n", result


FORGE = ("import os, struct\n"
         "for fd in range(3, 64):\n"
         "    try:\n"
         "        os.write(fd, struct.pack('>i', {status}))\n"
         "    except OSError:\n"
         "        pass\n")


@pytest.mark.parametrize("ending", [
    "os.close(1)\nos.close(2)\nos._exit(1)\n",
    "import signal\nos.close(1)\nos.close(2)\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "os.close(1)\nos.close(2)\nraise SystemExit(1)\n",
], ids=["os._exit(1)", "SIGKILL", "SystemExit(1)"])
def test_a_forged_status_then_a_failing_end(warm: Warm, ending: str) -> None:
    """One status of 0 written where the runner listens, the output closed, then a failure: the
    reported end must be the real one."""
    result = warm.case(FORGE.format(status=0) + ending)
    assert (result["exit_code"], result["outcome"]) != (0, "ok"), result


@pytest.mark.parametrize("status", [0, 3])
def test_the_exit_status_cannot_be_forged(warm: Warm, status: int) -> None:
    """Whatever the code writes to any descriptor, the reported exit is the real one."""
    code = ("import os, struct\n"
            "for fd in range(3, 64):\n"
            "    try:\n"
            f"        os.write(fd, struct.pack('>i', {status}))\n"
            "    except OSError:\n"
            "        pass\n"
            "import sys; sys.stdout.flush()\n"
            "raise SystemExit(42)\n")
    result = warm.case(code)
    assert (result["outcome"], result["exit_code"]) == ("error", 42), result


def test_exit_zero_after_a_forged_status_and_failing_asserts(warm: Warm) -> None:
    """A solution that reports success then fails its tests must not count as passing."""
    code = ("import os, struct\n"
            "for fd in range(3, 64):\n"
            "    try:\n"
            "        os.write(fd, struct.pack('>i', 0))\n"
            "    except OSError:\n"
            "        pass\n"
            "def solve():\n"
            "    return 1\n"
            "assert solve() == 2, 'wrong answer'\n")
    result = warm.case(code)
    assert result["outcome"] == "error", result
    assert "AssertionError: wrong answer" in result["stderr"]
