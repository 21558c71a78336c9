"""The in-container runner: forks one child per execution and reports how it ended.

Standard library only, with one C module (the template's loop and the child's set-up and
clean-up: native/_native.c). It speaks to the worker over a unix socket (or its attached stdin
and stdout) with frames of a 4-byte big-endian length followed by a JSON object (the wire format
is also described in service/runner_protocol.py; a contract test keeps the two in step).

Per execution: a child is forked, moved to its own session, made the OOM killer's first choice,
switched to the unprivileged sandbox uid, given a fresh working directory on the tmpfs and a
fresh environment, and runs the code (in the forked interpreter, or in a freshly exec'd one).
Children are forked by a template process that has never held a request or an output, so nothing
of an earlier execution is in their memory: the bare template, or the one that preloaded
SANDBOX_PRELOAD (numpy, or the scientific stack), as the request's `template` says. The next
child is forked ahead of time from the template the last request named; a request that names the
other one has it replaced first. The runner reads the child's output up to the cap, kills the
process group at the timeout, the cap or the worker's `cancel`, and answers. The next child,
forked ahead of time, cleans up as the sandbox uid (every process killed, every file removed);
then the runner announces that it is ready again. Files the request asked back are read first by
a child of their own, as the sandbox uid.

A `session` request instead makes the child keep its namespace and run one cell per `cell`
request until the worker closes the stream; such a container serves that session alone.

This file is the main loop; the parts are in sandbox_runner/ (its __init__ lists them).
"""

import gc
import os
import signal
import socket
import sys
import traceback

from sandbox_runner.clock import CgroupCpu
from sandbox_runner.config import ACCEPT_TIMEOUT_S, CLEANUP_TIMEOUT_S
from sandbox_runner.frames import PROTOCOL_VERSION, read_frame, write_frame
from sandbox_runner.session import serve_session
from sandbox_runner.supervise import OomCounter, execute
from sandbox_runner.template import Templates
from sandbox_runner.zygote import Zygote, zygote_main


def open_protocol():
    """The worker's stream: a unix socket in a directory only root can enter (SANDBOX_SOCKET),
    accepted once and unlinked, or else the attached stdin and stdout. Either way fds 0 and 1
    end up on /dev/null, so nothing writes into the protocol by accident."""
    path = os.environ.get("SANDBOX_SOCKET")
    if path:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(ACCEPT_TIMEOUT_S)  # no worker came: exit, and the container goes
        conn, _ = listener.accept()
        os.unlink(path)
        listener.close()
        conn.setblocking(True)
        proto_in = proto_out = conn.detach()
    else:
        proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    return proto_in, proto_out


def main():
    proto_in, proto_out = open_protocol()
    sys.stdout = sys.stderr
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    oom = OomCounter()
    cgroup = CgroupCpu()
    gc.collect()
    gc.freeze()  # the templates' collections then leave the runner's heap, which they share, alone
    # Every child is forked from a template, which has never held a request or an output.
    templates = Templates(zygote_main, {proto_in, proto_out, *oom.fds, *cgroup.fds},
                          list(filter(None, os.environ.get("SANDBOX_PRELOAD", "").split(","))))
    child = Zygote(templates.default)
    if not child.wait_clean(CLEANUP_TIMEOUT_S):
        return 3
    templates.settle()
    ready = {"op": "ready", "protocol": PROTOCOL_VERSION, "pid": os.getpid()}
    write_frame(proto_out, ready)
    while True:
        try:
            req = read_frame(proto_in)
        except (ValueError, OSError) as exc:
            # The worker's stream cannot be read: say why, on it if it still takes a frame (the
            # worker logs the reason with the run's sandbox error) and in the container's log.
            reason = "runner cannot read its request: %r" % exc
            print(reason, file=sys.stderr)
            try:
                write_frame(proto_out, {"op": "error", "error": reason})
            except OSError:
                pass
            return 2
        if req is None:
            child.close()
            return 0
        if req.get("op") == "cancel":
            continue  # of a run that had ended when it came
        if req.get("op") not in ("run", "session"):
            write_frame(proto_out, {"op": "error", "error": "unknown op %r" % req.get("op")})
            continue
        template = templates.pick(req.get("template"))
        if child.template is not template:  # the waiting child is of the other template
            child.close()
            child = Zygote(template)
            if not child.wait_clean(CLEANUP_TIMEOUT_S):
                child.close()
                return 3
        if req["op"] == "session":
            return serve_session(child, req, oom, cgroup, proto_in, proto_out)
        try:
            result = execute(child, req, oom, cgroup, proto_in, proto_out)
        except Exception:
            result = {"op": "error", "id": req.get("id"), "error": traceback.format_exc()}
        child.close()
        if req.get("return_files") and result["op"] == "result":
            collector = Zygote(templates.bare, collect=req)  # reads them back, as the sandbox uid
            result.update(collector.collected(CLEANUP_TIMEOUT_S))
            collector.close()
        write_frame(proto_out, result)
        child = Zygote(template, pages=template.pages_for(req.get("imports") or ()))
        if not child.wait_clean(CLEANUP_TIMEOUT_S):
            child.close()
            return 3  # something of the last execution survived: let the worker replace us
        write_frame(proto_out, ready)


if __name__ == "__main__":
    sys.exit(main())

