"""Cleaning up after an execution, from the next child, as the sandbox uid: nothing else of that
uid may live on, and what it wrote in the scratch places goes.

The sweep for processes (kill them all, then read every process's status in /proc until none
of the uid is left) is most of a child's clean-up. It is skipped when the container's cgroup
counts exactly the tasks of the runner's side and this child: every process the execution left
would be counted there too, from its fork until it is reaped, so nothing else lives.

The work is done in C (native/_native.c: no Python runs in the child between its fork and its
request); SysV IPC objects, rare, are removed with ipcrm from here."""

from sandbox_runner import _native
from sandbox_runner.config import CLEANUP_ROUNDS, PIDS_CURRENT_FILES, SCRATCH_DIRS


def container_tasks():
    """The tasks (processes and threads) in the container's cgroup now; None where it does not
    count them."""
    return _native.container_tasks(PIDS_CURRENT_FILES)


def kill_everything():
    """Whether every other process of this (the sandbox) uid is gone: kill(-1), then /proc
    checked after each round, since kill's return value cannot say (it counts processes it may
    not signal too)."""
    return _native.kill_everything(CLEANUP_ROUNDS)


def scrub(tasks):
    """Whether all of it went. tasks: the container's tasks when nothing of an execution lives
    (the runner's side and this child; see Templates.settle), 0 where that is not known."""
    clean = _native.scrub(tasks, PIDS_CURRENT_FILES, SCRATCH_DIRS, CLEANUP_ROUNDS)
    if _native.sysv_ipc_exists():  # rare: subprocess is imported only then (template.py says why)
        import subprocess

        subprocess.run(["ipcrm", "--all"], check=False, capture_output=True)
        clean = clean and not _native.sysv_ipc_exists()
    return clean
