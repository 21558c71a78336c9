"""The next execution's child, forked and sandboxed ahead of time (a "zygote").

It is forked by the template (see template.py), moves to its own session, becomes the OOM
killer's first choice, drops to the sandbox uid, cleans up after the previous execution and
waits for its request on a pipe. Forking a process with the scientific stack imported, and the
copy-on-write faults of its set-up, are then paid while the container is idle, not while a
caller waits. Its exit status comes from the kernel alone (it holds no pipe to report one on).
"""

import json
import os
import select
import signal
import sys
import traceback

from sandbox_runner import _native
from sandbox_runner.child import new_main, run_forked
from sandbox_runner.config import (
    CHILD_ENV,
    CLEAN,
    DIRTY,
    MAIN_PATH,
    MAX_OPEN_FILES,
    PYTHON,
    SANDBOX_GID,
    SANDBOX_NICE,
    SANDBOX_UID,
    WORKDIR,
)
from sandbox_runner.files import collect_files, read_until_eof, write_files, write_new
from sandbox_runner.frames import FRAME, read_frame, read_request, write_frame, write_request
from sandbox_runner.scrub import kill_everything, scrub

# What the next child needs of a request to read its files back (see send_collected).
COLLECT_FIELDS = ("return_files", "max_return_bytes", "max_return_files")


def zygote_main(ctl_r, stdin_r, stdout_w, stderr_w, status_w, files_w, tasks, pages,
                hold_memory):
    """In the template's fork. Never returns: sandboxes itself, waits for a request, becomes
    the execution. With files_w it is a collector instead: it reads back the previous
    execution's files (the first frame on ctl_r says which), sends them on files_w and exits,
    so that what it read is in no later execution's memory. tasks: see scrub. pages: what it
    writes ahead while it waits for its request (the template's list for the last request's
    kind of code, see pages.py), or None. hold_memory: a run in this interpreter leaves the
    teardown of its memory to a holder (the scientific template's children, see
    _native.hold_memory)."""
    try:
        # Its own session, the OOM killer's first choice, the pipes as fds 0-2, the sandbox
        # uid, and below the runner in its container's CPU share, so that a hundred busy
        # processes of a fork bomb cannot keep the runner from killing them at the deadline.
        _native.enter(stdin_r, stdout_w, stderr_w, SANDBOX_UID, SANDBOX_GID, SANDBOX_NICE,
                      MAX_OPEN_FILES)
        if files_w is not None:  # a collector: it reads the files back, and is done
            send_collected(files_w, read_frame(ctl_r))
            os._exit(0)
        # Clean up after the previous execution from here, as the sandbox uid: nothing else of
        # that uid may live on, and what it wrote in the scratch places goes.
        os.write(status_w, CLEAN if scrub(tasks) else DIRTY)
        os.mkdir(WORKDIR, 0o700)
        os.chdir(WORKDIR)
        main = new_main()
        if pages:  # while no request is there
            _native.touch(pages, ctl_r)
        req = read_request(ctl_r)
    except BaseException:
        os._exit(126)
    if req is None:  # discarded by the runner
        os._exit(0)
    # The forked interpreter keeps the signal handling CPython starts with (the runner's: SIGPIPE
    # ignored, SIGINT raising KeyboardInterrupt). An exec'd program starts from the defaults:
    # an ignored SIGPIPE would outlive the exec.
    if req.get("fresh_interpreter") or req.get("command"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if req.get("op") == "session":
        # Imported here: the bare template does not hold it (template.py); the preloaded one,
        # which sessions are forked from, does (preload.py).
        from sandbox_runner.cells import serve_cells

        serve_cells(req, ctl_r, main, status_w)
    # A one-shot run's exit status is taken from the kernel alone: the code could write
    # anything on a pipe it holds, so it holds none.
    os.close(ctl_r)
    os.close(status_w)
    try:
        # A CPU-time backstop behind the wall-clock timeout the runner enforces (see
        # _native.limit), and the cap on file sizes.
        _native.limit(req["max_file_bytes"], req["timeout_s"])
        write_files(WORKDIR, req.get("files") or {}, executable=req.get("executable") or ())
        argv = [str(a) for a in req.get("argv") or []]
        if req.get("command"):  # another language: its compiler, or its program
            exec_command(req, argv)
        write_new(MAIN_PATH, req["code"])
        if req.get("fresh_interpreter"):
            os.execve(PYTHON, [PYTHON, "-B", "main.py", *argv], CHILD_ENV)
        sys.argv = [MAIN_PATH, *argv]
        if hold_memory:
            _native.hold_memory()
        run_forked(req["code"], main)
    except BaseException:
        try:
            os.write(2, ("sandbox setup failed: %s" % traceback.format_exc()).encode())
        finally:
            os._exit(127)


def send_collected(fd, req):
    """In the next child, before it cleans up: the files the previous execution was asked to give
    back, sent to the runner once every process of that execution is gone."""
    try:
        kill_everything()
        found = collect_files(WORKDIR, req)
    except Exception:
        found = {"files": {}, "files_truncated": True}
    try:
        write_frame(fd, found)
    except OSError:
        pass
    os.close(fd)


def exec_command(req, argv):
    """Write the source (if the request has one) where the command expects it, and become the
    command: a compiler, or the program (an interpreter, or the compiled file)."""
    if req.get("source"):
        write_new(os.path.join(WORKDIR, req["source"]), req["code"])
    command = [str(a) for a in req["command"]]
    os.execvpe(command[0], [*command, *argv], CHILD_ENV)


class Zygote:
    """The next execution's child, forked and sandboxed, waiting on its control pipe."""

    def __init__(self, template, collect=None, pages=-1):
        """collect: the previous request, when the child is to send back the files it asked for
        (and do nothing else); pages: which of the template's lists of pages it writes ahead."""
        self.template = template
        ctl_r, self.ctl_w = os.pipe()
        stdin_r, self.stdin_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.status_r, status_w = os.pipe()  # close-on-exec: a fresh interpreter just closes it
        self.files_r = files_w = None
        if collect is not None:
            self.files_r, files_w = os.pipe()
        child_fds = (ctl_r, stdin_r, out_w, err_w, status_w, files_w)
        try:
            self.pid = template.fork(child_fds, pages)
        finally:
            for fd in child_fds:
                if fd is not None:
                    os.close(fd)
        for fd in (self.stdin_w, self.out_r, self.err_r, self.status_r):
            os.set_blocking(fd, False)
        if collect is not None:
            self.send({name: collect.get(name) for name in COLLECT_FIELDS})
        self.status = None
        self.reaped = False

    @property
    def exit_fd(self):
        """Polls readable when the template has news of the child (see exited)."""
        return self.template.fd

    def wait_clean(self, timeout_s):
        """Whether the child cleaned up after the previous execution, within timeout_s."""
        poller = select.poll()
        poller.register(self.status_r, select.POLLIN)
        if not poller.poll(timeout_s * 1000):
            return False
        try:
            return os.read(self.status_r, 1) == CLEAN
        except BlockingIOError:
            return False

    def hand_over(self, req):
        """Give the child its request and close the control pipe (a one-shot run)."""
        self.send_request(req)
        os.close(self.ctl_w)
        self.ctl_w = None

    def send_request(self, req):
        """The child's request (blocking; the child reads it all before anything else); if the
        child died before reading it, its exit status will tell."""
        try:
            write_request(self.ctl_w, req)
        except BrokenPipeError:
            pass

    def send(self, message):
        """One frame on the control pipe; False if the child is gone."""
        try:
            write_frame(self.ctl_w, message)
        except BrokenPipeError:
            return False
        return True

    def close_stdin(self):
        os.close(self.stdin_w)
        self.stdin_w = None

    def collected(self, timeout_s):
        """The files the child read back for the previous execution (see send_collected)."""
        data = read_until_eof(self.files_r, timeout_s)
        os.close(self.files_r)
        self.files_r = None
        if data is None or len(data) < FRAME.size:
            return {"files": {}, "files_truncated": True}
        return json.loads(data[FRAME.size:])

    def wait_exit(self):
        """Until the child has exited; unreaped, its counts in /proc are still there."""
        if self.status is None:
            self.status = self.template.exit_status(self.pid, block=True)

    def wait(self):
        """The child's wait status, once it has exited; then the template reaps it."""
        self.wait_exit()
        if not self.reaped:
            self.template.reap(self.pid)
            self.reaped = True
        return self.status

    def close(self):
        kill_group(self.pid)
        self.wait()
        for fd in (self.ctl_w, self.stdin_w, self.out_r, self.err_r, self.status_r):
            if fd is not None:
                os.close(fd)

    def exited(self):
        """Whether the child has exited (not yet reaped: its group id stays its own)."""
        if self.status is None:
            self.status = self.template.exit_status(self.pid, block=False)
        return self.status is not None


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
