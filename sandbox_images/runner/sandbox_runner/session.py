"""A session's cells watched from the runner: the container's one session, one cell per
`cell` request, until the worker closes the stream or the child dies."""

import json
import os
import select
import signal
import time
import traceback

from sandbox_runner.clock import TIMEOUT, ExecutionClock
from sandbox_runner.config import DRAIN_AFTER_EXIT_S, INTERRUPT_GRACE_S, READ_CHUNK
from sandbox_runner.frames import FRAME, read_frame, write_frame
from sandbox_runner.stream import Forwarder
from sandbox_runner.supervise import Capture, exit_of, result_message
from sandbox_runner.zygote import kill_group


class CellSupervision:
    """Pumps one cell's output until the child reports the cell done or dies. Past the timeout
    the cell is interrupted (SIGINT); if it does not stop within the grace, the child is killed
    and the session is over. Output past the cap is read and dropped: the session lives on.
    If the worker's stream closes meanwhile (the worker died), the session is over at once."""

    def __init__(self, child, msg, captures, proto_in, forwarder=None):
        self.child = child
        self.proto_in = proto_in
        self.forwarder = forwarder  # sends output on as it comes, if the call asked
        self.deadline = time.monotonic() + msg["timeout_s"]
        self.grace = msg.get("interrupt_grace_s", INTERRUPT_GRACE_S)
        self.kill_at = float("inf")
        self.captures = {c.fd: c for c in captures}
        self.max_report = 4 * (msg["max_output_bytes"] + msg.get("max_return_bytes", 0)) + (1 << 20)
        self.buffer = bytearray()
        self.poller = select.poll()
        self.timed_out = self.output_limited = self.died = self.worker_gone = False
        self.report = None

    def run(self):
        for fd in (*self.captures, self.child.exit_fd, self.child.status_r):
            self.poller.register(fd, select.POLLIN)
        self.poller.register(self.proto_in, select.POLLRDHUP)  # the worker sends nothing mid-cell
        while self.report is None and not self.died:
            now = time.monotonic()
            if now >= self.kill_at:
                kill_group(self.child.pid)
                self.kill_at = float("inf")
            elif now >= self.deadline:
                self.timed_out = True
                self.interrupt()
                self.deadline = float("inf")
                self.kill_at = now + self.grace
            wake = min(self.deadline, self.kill_at) - now
            timeout_ms = None if wake == float("inf") else max(0.0, wake) * 1000
            for fd, _ in self.poller.poll(timeout_ms):
                self.on_ready(fd)
        self.drain()

    def interrupt(self):
        try:
            os.kill(self.child.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def on_ready(self, fd):
        if fd == self.proto_in:
            self.worker_gone = True
            self.garbled()
        elif fd == self.child.exit_fd:
            self.died = self.child.exited()
        elif fd == self.child.status_r:
            self.read_report()
        elif not self.read(fd):
            self.poller.unregister(fd)
            del self.captures[fd]
        elif self.captures[fd].truncated:
            self.output_limited = True

    def read(self, fd):
        """Read a stream's output (False at EOF), and send it on if the call asked."""
        capture = self.captures[fd]
        more = capture.read()
        if self.forwarder is not None:
            self.forwarder.forward(capture)
        return more

    def read_report(self):
        """The cell's report: a frame on the status pipe, sent once its output is flushed."""
        try:
            data = os.read(self.child.status_r, READ_CHUNK)
        except BlockingIOError:
            return
        if not data:
            self.poller.unregister(self.child.status_r)
            return
        self.buffer += data
        if len(self.buffer) < FRAME.size:
            return
        (size,) = FRAME.unpack_from(self.buffer)
        if size > self.max_report:
            self.garbled()
        elif len(self.buffer) >= FRAME.size + size:
            try:
                report = json.loads(self.buffer[FRAME.size:FRAME.size + size])
            except ValueError:
                report = None
            if isinstance(report, dict):
                self.report = report
            else:
                self.garbled()

    def garbled(self):
        """The session cannot go on (something else wrote on the status pipe; no worker)."""
        kill_group(self.child.pid)
        self.died = True

    def drain(self):
        """What the child wrote before its report (or its end) is in the pipes: read it."""
        until = time.monotonic() + DRAIN_AFTER_EXIT_S
        while self.captures and time.monotonic() < until:
            ready = self.poller.poll(0)
            if not ready:
                return
            for fd, _ in ready:
                if fd in self.captures and not self.read(fd):
                    self.poller.unregister(fd)
                    del self.captures[fd]


def execute_cell(child, msg, oom, cgroup, proto_in, proto_out):
    oom_before = oom.read()
    clock = ExecutionClock(msg, child.pid, cgroup)  # for its usage: a cell's timeout is wall-clock
    cap = msg["max_output_bytes"]
    captures = (Capture(child.out_r, cap), Capture(child.err_r, cap))
    forwarder = Forwarder(proto_out, msg["id"], captures) if msg.get("stream") else None
    cell = CellSupervision(child, msg, captures, proto_in, forwarder)
    if child.send(msg):
        cell.run()
    else:
        cell.died = True
    run_ms = (time.monotonic() - clock.started) * 1000
    clock.refresh()
    usage = clock.usage()
    report = cell.report or {}
    exit_code, signum = report.get("status"), None
    if cell.report is None:
        kill_group(child.pid)
        exit_code, signum = exit_of(child.wait())
    elif not isinstance(exit_code, int):
        exit_code = 1
    value = report.get("value")
    result = {
        **result_message(msg["id"], exit_code, signum, captures, oom, oom_before, run_ms, usage),
        "timed_out": cell.timed_out,
        "time_limit": TIMEOUT if cell.timed_out else None,
        "output_limited": captures[0].truncated or captures[1].truncated,
        "value": value if isinstance(value, str) else None,
        "session_ended": cell.report is None,
    }
    if msg.get("return_files"):
        files = report.get("files")
        result["files"] = files if isinstance(files, dict) else {}
        result["files_truncated"] = bool(report.get("files_truncated")) or cell.report is None
    return result


def serve_session(child, req, oom, cgroup, proto_in, proto_out):
    """The container's one session: the waiting child keeps its namespace across `cell`
    requests, until the worker closes the stream or the child dies. Then the runner exits."""
    child.close_stdin()  # cells read EOF on stdin
    child.send_request(req)
    write_frame(proto_out, {"op": "session_ready", "id": req.get("id")})
    while True:
        try:
            msg = read_frame(proto_in)
        except (ValueError, OSError):
            msg = None
        if msg is None:
            break
        if msg.get("op") != "cell":
            write_frame(proto_out, {"op": "error", "id": msg.get("id"),
                                    "error": "unknown op %r" % msg.get("op")})
            continue
        try:
            result = execute_cell(child, msg, oom, cgroup, proto_in, proto_out)
        except Exception:
            result = {"op": "error", "id": msg.get("id"), "error": traceback.format_exc()}
        try:
            write_frame(proto_out, result)
        except OSError:
            break  # the worker is gone
        if result.get("session_ended", True):
            break
    child.close()
    return 0
