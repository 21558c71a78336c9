"""Privilege: the code runs as uid 10001 with no capabilities and no way to gain any."""

import pytest

from tests.security.probe import Warm

LIBC = "import ctypes, errno, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"


def errname() -> str:
    return "errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())"


REFUSED = {
    "setuid(0)": "os.setuid(0)",
    "setgid(0)": "os.setgid(0)",
    "setgroups([0])": "os.setgroups([0])",
    "setresuid to root": "os.setresuid(0, 0, 0)",
    "chown to root": "open('f', 'w').close(); os.chown('f', 0, 0)",
    "chmod +s a root binary": "os.chmod('/usr/bin/python3.11', 0o4755)",
    "raise the hard nofile limit": (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (hard + 1, hard + 1))"),
    "raise the hard CPU limit": (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_CPU)\n"
        "resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY,) * 2)"),
    "raise the file size limit": (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)"),
    "chroot": "os.chroot('/tmp')",
    "mknod a disk": "os.mknod('sda', 0o600 | 0o060000, os.makedev(8, 0))",
    "open a namespace of PID 1 (to setns into it)": "os.open('/proc/1/ns/mnt', os.O_RDONLY)",
    "open the runner's root directory": "os.listdir('/proc/1/root/')",
    "sethostname": "import socket; socket.sethostname('owned')",
}

LIBC_REFUSED = {
    "mount a tmpfs": "libc.mount(b'none', b'/mnt', b'tmpfs', 0, None)",
    "mount proc again": "libc.mount(b'proc', b'/tmp', b'proc', 0, None)",
    "unshare a user namespace": "libc.unshare(0x10000000)",
    "unshare a mount namespace": "libc.unshare(0x00020000)",
    "unshare a network namespace": "libc.unshare(0x40000000)",
    "init_module": "libc.syscall(175, None, 0, b'')",
    "finit_module": "libc.syscall(313, os.open('/bin/true', os.O_RDONLY), b'', 0)",
    "delete_module": "libc.syscall(176, b'overlay', 0)",
    "reboot": "libc.reboot(0x1234567)",
    "settimeofday": "libc.settimeofday(ctypes.byref((ctypes.c_long * 2)(0, 0)), None)",
    "iopl": "libc.syscall(172, 3)",
    "bpf": "libc.syscall(321, 0, None, 0)",
    "perf_event_open": "libc.syscall(298, ctypes.create_string_buffer(128), 0, -1, -1, 0)",
    "keyctl join a keyring": "libc.syscall(250, 1, b'owned')",
    "swapoff": "libc.swapoff(b'/dev/sda')",
}


@pytest.mark.parametrize("call", REFUSED.values(), ids=REFUSED.keys())
def test_python_level_escalation_is_refused(warm: Warm, call: str) -> None:
    code = ("import errno, os\n"
            "try:\n" + "".join(f"    {line}\n" for line in call.splitlines()) +
            "    print('ALLOWED')\n"
            "except (OSError, ValueError) as exc:\n"
            "    print('refused', type(exc).__name__, errno.errorcode.get(getattr(exc, 'errno', 0) or 0))\n")
    result = warm.case(code)
    assert result["outcome"] == "ok", result
    assert result["stdout"].startswith("refused"), result


@pytest.mark.parametrize("call", LIBC_REFUSED.values(), ids=LIBC_REFUSED.keys())
def test_system_calls_that_need_privilege_are_refused(warm: Warm, call: str) -> None:
    code = LIBC + f"rc = {call}\nprint('ALLOWED' if rc == 0 else 'refused ' + str({errname()}))\n"
    result = warm.case(code)
    assert result["outcome"] == "ok", result
    assert result["stdout"].startswith("refused"), result


def test_no_capabilities_and_no_new_privileges(warm: Warm) -> None:
    code = ("status = dict(line.split(':\\t') for line in open('/proc/self/status').read().splitlines()\n"
            "              if ':\\t' in line)\n"
            "print({k: status[k].strip() for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb',\n"
            "                                      'NoNewPrivs', 'Seccomp')})\n")
    result = warm.case(code)
    caps = eval(result["stdout"])  # a dict literal printed by the snippet above
    zero = "0000000000000000"
    assert {k: caps[k] for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")} == dict.fromkeys(
        ("CapInh", "CapPrm", "CapEff", "CapAmb"), zero)
    assert caps["CapBnd"] == "00000000000000e0"  # SETGID, SETUID, KILL: the runner's, not ours
    assert caps["NoNewPrivs"] == "1"
    assert caps["Seccomp"] == "2"  # the engine's default profile filters system calls


def test_a_setuid_copy_gains_nothing(warm: Warm) -> None:
    """chmod +s on its own copy is allowed, but the tmpfs is noexec and nosuid: it cannot run;
    and su has no way to root."""
    code = ("import os, shutil, subprocess\n"
            "shutil.copy('/usr/bin/id', 'myid')\n"
            "os.chmod('myid', 0o4755)\n"
            "try:\n"
            "    subprocess.run(['./myid', '-u'])\n"
            "    print('RAN')\n"
            "except PermissionError:\n"
            "    print('not executable')\n"
            "print(subprocess.run(['su', '-c', 'id -u'], capture_output=True, text=True,\n"
            "                     input='').returncode != 0)\n")
    result = warm.case(code)
    assert result["stdout"] == "not executable\nTrue\n", result
