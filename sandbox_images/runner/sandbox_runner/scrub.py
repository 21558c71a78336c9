"""Cleaning up after an execution, from the next child, as the sandbox uid: nothing else of that
uid may live on, and what it wrote in the scratch places goes.

The sweep for processes (kill them all, then read every process's status in /proc until none
of the uid is left) is most of a child's clean-up. It is skipped when the container's cgroup
counts exactly the tasks of the runner's side and this child: every process the execution left
would be counted there too, from its fork until it is reaped, so nothing else lives."""

import os
import signal
import time

from sandbox_runner.config import CLEANUP_ROUNDS, PIDS_CURRENT_FILES, SANDBOX_UID, SCRATCH_DIRS


def read_small(path):
    """A /proc file's first 4 KiB as bytes (no text layer: cheaper in a forked child); None if
    it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def container_tasks():
    """The tasks (processes and threads) in the container's cgroup now; None where it does not
    count them."""
    for path in PIDS_CURRENT_FILES:
        count = read_small(path)
        if count is not None:
            return int(count) if count.strip().isdigit() else None
    return None


def sandbox_processes():
    """Live processes of the sandbox uid but this one (zombies wait for init to reap them)."""
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        status = read_small("/proc/%s/status" % name)
        if status is None:
            continue
        state = status.partition(b"\nState:\t")[2][:1]
        uid = status.partition(b"\nUid:\t")[2].partition(b"\t")[0]
        if uid.isdigit() and int(uid) == SANDBOX_UID and state != b"Z":
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
    """Whether a SysV shared memory segment, message queue or semaphore set exists (each file
    has a header line)."""
    for kind in ("shm", "msg", "sem"):
        table = read_small("/proc/sysvipc/" + kind)
        if table is not None and table.count(b"\n") > 1:
            return True
    return False


def scrub(tasks):
    """Whether all of it went. tasks: the container's tasks when nothing of an execution lives
    (the runner's side and this child; see Templates.settle), 0 where that is not known."""
    clean = (tasks > 0 and container_tasks() == tasks) or kill_everything()
    for path in SCRATCH_DIRS:
        remove_tree(path)
        try:
            clean = clean and not os.listdir(path)
        except OSError:
            pass
    if has_sysv_ipc():  # rare: subprocess is imported only then (template.py says why)
        import subprocess

        subprocess.run(["ipcrm", "--all"], check=False, capture_output=True)
        clean = clean and not has_sysv_ipc()
    return clean
