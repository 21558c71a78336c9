"""One execution watched from the runner: stdin fed, output read up to its cap, the process
group killed at a time limit (see clock), the cap or the worker's `cancel`, the exit status from
the kernel, the cgroup's OOM counters read before and after."""

import base64
import os
import select
import time

from sandbox_runner.clock import ExecutionClock
from sandbox_runner.config import DRAIN_AFTER_EXIT_S, MEMORY_EVENT_FILES, READ_CHUNK
from sandbox_runner.frames import read_frame
from sandbox_runner.stream import Forwarder
from sandbox_runner.zygote import kill_group


class OomCounter:
    """The cgroup's counts of OOM kills and of times memory use hit the limit (a program that
    thrashes there until its timeout), from files kept open and re-read in place."""

    def __init__(self):
        self.sources = []
        for path, kills, hits in MEMORY_EVENT_FILES:
            try:
                self.sources.append((os.open(path, os.O_RDONLY), kills, hits))
            except OSError:
                continue

    @property
    def fds(self):
        return [fd for fd, _, _ in self.sources]

    def read(self):
        """(OOM kills, limit hits); None for a count this cgroup does not keep."""
        counts = [None, None]
        for fd, kills, hits in self.sources:
            for line in os.pread(fd, 4096, 0).decode().splitlines():
                key, _, value = line.rpartition(" ")
                for i, wanted in enumerate((kills, hits)):
                    if wanted is not None and key == wanted:
                        counts[i] = int(value)
        return tuple(counts)


class Capture:
    """One output stream, kept up to a cap."""

    def __init__(self, fd, cap):
        self.fd = fd
        self.cap = cap
        self.chunks = []
        self.size = 0
        self.truncated = False

    def read(self):
        """Read what is there; False at EOF. Sets `truncated` when the cap is passed."""
        try:
            data = os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            return True
        if not data:
            return False
        room = self.cap - self.size
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        self.chunks.append(data)
        self.size += len(data)
        return True

    def text(self):
        return b"".join(self.chunks).decode("utf-8", errors="replace")


class Supervision:
    """Pumps stdin and output until the child ends, the deadline passes, output overflows or
    the worker cancels the run (a `cancel` frame on `proto_in`, or the stream closed)."""

    def __init__(self, child, clock, req, captures, forwarder=None, proto_in=None):
        self.child = child
        self.job_id = req.get("id")
        self.proto_in = proto_in
        self.cancelled = False
        self.clock = clock
        self.forwarder = forwarder  # sends output on as it comes, if the request asked
        self.deadline = clock.next_check(time.monotonic())
        self.stdin_data = memoryview(base64.b64decode(req.get("stdin") or ""))
        self.captures = {c.fd: c for c in captures}
        self.poller = select.poll()
        self.timed_out = self.output_limited = False
        self.limit = None  # which time limit ended it (see clock)
        self.drain_until = None

    def run(self):
        child = self.child
        for fd in self.captures:
            self.poller.register(fd, select.POLLIN)
        self.poller.register(child.exit_fd, select.POLLIN)
        if self.proto_in is not None:
            self.poller.register(self.proto_in, select.POLLIN)
        if self.stdin_data:
            self.poller.register(child.stdin_w, select.POLLOUT)
        else:
            self.close_stdin()
        while self.captures:
            now = time.monotonic()
            if self.drain_until is not None and now >= self.drain_until:
                break
            if now >= self.deadline:
                self.check_limits(now)
            limit = min(self.deadline, self.drain_until or float("inf")) - now
            timeout_ms = None if limit == float("inf") else max(0.0, limit) * 1000
            for fd, _ in self.poller.poll(timeout_ms):
                self.on_ready(fd)
        self.close_stdin()
        if not (self.timed_out or self.output_limited or self.cancelled):
            self.await_exit()

    def await_exit(self):
        """The output has ended: the child is exiting, or it closed its output and goes on.
        Wait for the kernel's word that it exited, within its time."""
        if self.drain_until is not None:  # it has exited already
            return
        poller = select.poll()
        poller.register(self.child.exit_fd, select.POLLIN)
        while not self.child.exited() and not self.timed_out:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                self.check_limits(time.monotonic())

    def check_limits(self, now):
        """At a check time: kill the group if a time limit is reached, else set the next check."""
        self.limit = self.clock.reached(now)
        if self.limit is None:
            self.deadline = self.clock.next_check(now)
            return
        self.timed_out = True
        kill_group(self.child.pid)
        self.deadline = float("inf")

    def on_ready(self, fd):
        child = self.child
        if fd == child.exit_fd:
            if child.exited():
                self.poller.unregister(fd)
                self.ended()
        elif fd == self.proto_in:
            self.on_worker()
        elif fd == child.stdin_w:
            try:
                sent = os.write(fd, self.stdin_data[:READ_CHUNK])
                self.stdin_data = self.stdin_data[sent:]
            except OSError:  # the code closed its stdin: the rest is not wanted
                self.stdin_data = self.stdin_data[:0]
            if not self.stdin_data:
                self.close_stdin()
        else:
            capture = self.captures[fd]
            more = capture.read()
            if self.forwarder is not None:
                self.forwarder.forward(capture)
            if not more:
                self.poller.unregister(fd)
                del self.captures[fd]
            elif capture.truncated and not self.output_limited:
                self.output_limited = True
                kill_group(child.pid)

    def on_worker(self):
        """The worker spoke during the run: a `cancel` of it, or the stream closed (nobody
        waits for it any more). A late cancel of an earlier run is let pass."""
        try:
            message = read_frame(self.proto_in)
        except (ValueError, OSError):
            message = None
        if message is not None and (message.get("op") != "cancel"
                                    or message.get("id") != self.job_id):
            return
        self.poller.unregister(self.proto_in)
        self.proto_in = None
        self.cancelled = True
        kill_group(self.child.pid)
        self.deadline = float("inf")

    def ended(self):
        """The main process is done: read what is left, but not for a daemon holding the pipes."""
        if self.drain_until is None:
            self.drain_until = time.monotonic() + DRAIN_AFTER_EXIT_S
            self.deadline = float("inf")

    def close_stdin(self):
        if self.child.stdin_w is not None:
            try:
                self.poller.unregister(self.child.stdin_w)
            except KeyError:
                pass
            os.close(self.child.stdin_w)
            self.child.stdin_w = None


def exit_of(status):
    """(exit code, signal) from a wait status."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


def memory_events(before, after):
    """What the cgroup's counters say happened in between."""
    rose = [b is not None and (a or 0) > b for b, a in zip(before, after, strict=True)]
    return {"oom_killed": rose[0], "memory_limit_hit": rose[1]}


def result_message(job_id, exit_code, signum, captures, oom, oom_before, run_ms, usage):
    """The fields every `result` carries (usage: the clock's, see ExecutionClock.usage)."""
    return {
        "op": "result",
        "id": job_id,
        "exit_code": exit_code,
        "signal": signum,
        "stdout": captures[0].text(),
        "stderr": captures[1].text(),
        "stdout_truncated": captures[0].truncated,
        "stderr_truncated": captures[1].truncated,
        **memory_events(oom_before, oom.read()),
        "run_ms": round(run_ms, 3),
        **usage,
    }


def execute(child, req, oom, cgroup, proto_in, proto_out):
    oom_before = oom.read()
    cap = req["max_output_bytes"]
    captures = (Capture(child.out_r, cap), Capture(child.err_r, cap))
    clock = ExecutionClock(req, child.pid, cgroup)
    child.hand_over(req)
    forwarder = Forwarder(proto_out, req["id"], captures) if req.get("stream") else None
    supervision = Supervision(child, clock, req, captures, forwarder, proto_in)
    supervision.run()
    run_ms = (time.monotonic() - clock.started) * 1000
    clock.refresh()
    kill_group(child.pid)  # whatever is left of its group once the main process has ended
    child.wait_exit()
    usage = clock.usage()  # the CPU it used dying counts too
    exit_code, signum = exit_of(child.wait())
    return {
        **result_message(req["id"], exit_code, signum, captures, oom, oom_before, run_ms, usage),
        "timed_out": supervision.timed_out,
        "time_limit": supervision.limit,
        "output_limited": supervision.output_limited,
        "cancelled": supervision.cancelled,
    }
