"""Cleaning up after an execution, from the next child, as the sandbox uid: nothing else of that
uid may live on, and what it wrote in the scratch places goes."""

import os
import signal
import subprocess
import time

from sandbox_runner.config import CLEANUP_ROUNDS, SANDBOX_UID, SCRATCH_DIRS


def sandbox_processes():
    """Live processes of the sandbox uid but this one (zombies wait for init to reap them)."""
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        uid = state = None
        try:
            with open("/proc/%s/status" % name) as f:
                for line in f:
                    if line.startswith("State:"):
                        state = line.split()[1]
                    elif line.startswith("Uid:"):
                        uid = int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
        if uid == SANDBOX_UID and state != "Z":
            found.append(int(name))
    return found


def kill_everything():
    """kill(-1) from the sandbox uid reaches every process of that uid but this one.

    Its return value cannot say whether any remain (it counts processes it may not signal
    too), so /proc is checked after each round.
    """
    for _ in range(CLEANUP_ROUNDS):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return True
        if not sandbox_processes():
            return True
        time.sleep(0.002)
    return False


def remove_tree(path):
    """Delete what is under path without following a symlink; chmod back what was locked."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, 0o700)
                remove_tree(entry.path)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


def has_sysv_ipc():
    for kind in ("shm", "msg", "sem"):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                if len(f.readlines()) > 1:
                    return True
        except OSError:
            pass
    return False


def scrub():
    clean = kill_everything()
    for path in SCRATCH_DIRS:
        remove_tree(path)
        try:
            clean = clean and not os.listdir(path)
        except OSError:
            pass
    if has_sysv_ipc():
        subprocess.run(["ipcrm", "--all"], check=False, capture_output=True)
        clean = clean and not has_sysv_ipc()
    return clean
