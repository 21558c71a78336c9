"""The templates: the processes every execution's child is forked from.

The runner forks them at its start, before it reads any request, and from then on asks one of
them for each child: the bare template, which imports nothing beyond the runner's own standard
library modules (the cheapest fork), and the preloaded one, forked once the runner has imported
the modules of SANDBOX_PRELOAD (numpy, or the whole scientific stack) so that code using them
does not import them afresh. Any template can run any code: only the speed differs. A child's
memory is a copy of an interpreter that has never held a request or an output: nothing of an
earlier execution (its code, stdin, files, output, not even in freed memory) can be found by the
code that runs next. The template only ever handles fds and pids: it forks a child on the fds
the runner passes it, tells the runner its pid, and, as its parent, the child's wait status once
it has exited. It reaps the child only when the runner says so (after killing what is left of
the child's process group), so the group's id cannot be reused meanwhile.

Messages on a SOCK_SEQPACKET socket pair, one per send:
    runner -> template   b"fork <tasks>" (with the child's fds attached), b"reap <pid>"
    template -> runner   b"pid <pid>", b"exit <pid> <wait status>"
"""

import gc
import os
import select
import signal
import socket
import sys

from sandbox_runner.child import prepare_interpreter
from sandbox_runner.config import BARE, PRELOADED
from sandbox_runner.scrub import container_tasks

MESSAGE_SIZE = 64
CHILD_FDS = 6  # control, stdin, stdout, stderr, status, files (left out when none: it is last)


def reseed():
    """Fresh random state for the next child, set in the template before it forks (cheaper
    there). Python's own `random` reseeds itself in every forked child."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(int.from_bytes(os.urandom(4), "little"))


def wait_status(info):
    """A waitid() result as the wait status waitpid() would give."""
    if info.si_code == os.CLD_EXITED:
        return (info.si_status & 0xFF) << 8
    return info.si_status | (0x80 if info.si_code == os.CLD_DUMPED else 0)


class Template:
    """The runner's handle on the template process."""

    def __init__(self, child_main, close_in_template):
        """Fork the template. child_main(*fds) becomes each child (it never returns);
        close_in_template: the runner's fds, which the template must not hold."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            ours.close()
            for fd in close_in_template:
                os.close(fd)
            prepare_interpreter()  # the code's environment and streams, once for every child
            gc.collect()
            gc.freeze()  # keep the template's heap shared with every forked child
            serve(theirs, child_main)
        theirs.close()
        self.sock = ours
        self.fd = ours.fileno()  # polls readable when the template has news of the child
        self.tasks = 0  # passed to each child's clean-up (see Templates.settle)

    def fork(self, fds):
        """A child on these fds (see CHILD_FDS); its pid."""
        socket.send_fds(self.sock, [b"fork %d" % self.tasks], [fd for fd in fds if fd is not None])
        message = self.sock.recv(MESSAGE_SIZE)
        kind, _, pid = message.partition(b" ")
        if kind != b"pid":
            raise RuntimeError("template answered %r" % message)
        return int(pid)

    def exit_status(self, pid, block):
        """The child's wait status once it has exited, else None (at once, unless block)."""
        try:
            message = self.sock.recv(MESSAGE_SIZE, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        parts = message.split()
        if len(parts) != 3 or parts[0] != b"exit" or int(parts[1]) != pid:
            raise RuntimeError("template answered %r" % message)
        return int(parts[2])

    def reap(self, pid):
        self.sock.send(b"reap %d" % pid)


class Templates:
    """The runner's templates by name: `bare`, and `preloaded` when the image has any of the
    modules to preload. The bare one is forked first; then the runner imports the modules
    (with the container's environment: matplotlib finds its font cache there) and forks the
    preloaded one, which so shares their memory with the runner."""

    def __init__(self, child_main, close_in_template, modules):
        self.bare = Template(child_main, close_in_template)
        self.by_name = {BARE: self.bare}
        # Only now: the bare template holds none of these modules, and each child's fork and
        # exit cost grows with the memory of the template it is forked from.
        from sandbox_runner.preload import installed, preload

        modules = installed(modules)
        if modules:
            preload(modules)
            gc.collect()
            gc.freeze()
            self.by_name[PRELOADED] = Template(child_main, {*close_in_template, self.bare.fd})
        self.default = self.by_name.get(PRELOADED, self.bare)

    def settle(self):
        """Once the first child waits, clean: when the container's cgroup counts exactly the
        runner's side (the container's init, the runner, the templates) and that child, every
        child from now on is told that count, and skips the sweep for processes when it finds
        it (scrub.py). Threads or processes of ours beyond those, or a cgroup that does not
        count, leave every child to sweep."""
        expected = len({1, os.getpid()}) + len(self.by_name) + 1
        if container_tasks() == expected:
            for template in self.by_name.values():
                template.tasks = expected

    def pick(self, name):
        """The template a request names; the preloaded one for any other name, or none."""
        return self.by_name.get(name, self.default)


def serve(sock, child_main):
    """The template's loop. Never returns: it ends when the runner does."""
    children = {}  # pid -> the fd that polls readable when it exits (pidfd or wake-up pipe)
    reported = set()
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    wakeup = []  # without pidfds (gVisor): a pipe every SIGCHLD writes a byte to

    def report_exits(ready_fd):
        for pid, exit_fd in children.items():
            if exit_fd != ready_fd or pid in reported:
                continue
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is None:
                continue
            reported.add(pid)
            if exit_fd not in wakeup:
                poller.unregister(exit_fd)
            sock.send(b"exit %d %d" % (pid, wait_status(info)))

    try:
        while True:
            for fd, _ in poller.poll():
                if fd != sock.fileno():
                    if fd in wakeup:
                        drain(fd)
                    report_exits(fd)
                    continue
                message, fds, _, _ = socket.recv_fds(sock, MESSAGE_SIZE, CHILD_FDS)
                if not message:
                    raise SystemExit
                kind, _, argument = message.partition(b" ")
                if kind == b"fork":
                    pid = fork_child(sock, fds, wakeup, child_main, int(argument or 0))
                    try:
                        exit_fd = os.pidfd_open(pid)
                        poller.register(exit_fd, select.POLLIN)
                    except OSError:
                        if not wakeup:
                            wakeup[:] = sigchld_pipe()
                            poller.register(wakeup[0], select.POLLIN)
                        exit_fd = wakeup[0]
                    children[pid] = exit_fd
                    sock.send(b"pid %d" % pid)
                    report_exits(exit_fd)  # it may have ended before its SIGCHLD was caught
                elif message.startswith(b"reap "):
                    pid = int(message[5:])
                    os.waitpid(pid, 0)
                    reported.discard(pid)
                    exit_fd = children.pop(pid)
                    if exit_fd not in wakeup:
                        os.close(exit_fd)
    except BaseException:
        for pid in children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os._exit(0)


def fork_child(sock, fds, wakeup, child_main, tasks):
    """Fork the next execution's child on the runner's fds; in the template, close them."""
    reseed()
    pid = os.fork()
    if pid == 0:
        sock.close()
        if wakeup:  # the template's SIGCHLD wake-up is not the child's
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in wakeup:
                os.close(fd)
        child_main(*fds, *([None] * (CHILD_FDS - len(fds))), tasks)
    for fd in fds:
        os.close(fd)
    return pid


def sigchld_pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(w)
    return r, w


def drain(fd):
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
