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
import socket
import sys

from sandbox_runner import _native
from sandbox_runner.child import prepare_interpreter
from sandbox_runner.config import BARE, HOLD_MEMORY_FROM_MIB, PRELOADED
from sandbox_runner.scrub import container_tasks

MESSAGE_SIZE = 64
CHILD_FDS = 6  # control, stdin, stdout, stderr, status, files (left out when none: it is last)


def reseeder():
    """What gives each child a fresh random state, called in the template before it forks
    (cheaper there): numpy's global one, if imported; None when there is nothing to reseed.
    Python's own `random` reseeds itself in every forked child."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None
    return lambda: numpy.random.seed(int.from_bytes(os.urandom(4), "little"))


def resident_bytes():
    """This process's resident memory."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Template:
    """The runner's handle on the template process."""

    def __init__(self, child_main, close_in_template, probed=(), hold_memory=False):
        """Fork the template. child_main(*fds, tasks, pages, hold_memory) becomes each child
        (it never returns); close_in_template: the runner's fds, which the template must not
        hold; probed: (package, pages) for each list of pages a child may be told to write
        ahead (see pages.py); hold_memory: whether its children leave the teardown of their
        memory to a holder (_native.hold_memory)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            try:  # nothing here may return into the runner's code: the template, or a child
                ours.close()
                for fd in close_in_template:
                    os.close(fd)
                prepare_interpreter()  # the code's environment and streams, once for every child
                gc.collect()
                gc.freeze()  # keep the template's heap shared with every forked child
                # The loop is in C (native/_native.c): after each fork the template's memory is
                # all shared with the child, and each page its Python wrote would be copied.
                fds, tasks, ahead = _native.serve_template(theirs.detach(), reseeder())
                child_main(*fds, *([None] * (CHILD_FDS - len(fds))), tasks,
                           probed[ahead][1] if 0 <= ahead < len(probed) else None, hold_memory)
            finally:
                os._exit(126)
        theirs.close()
        self.sock = ours
        self.fd = ours.fileno()  # polls readable when the template has news of the child
        self.tasks = 0  # passed to each child's clean-up (see Templates.settle)
        self.packages = [package for package, _ in probed]

    def pages_for(self, imports):
        """Which of its lists of pages a child writes ahead when the last request's code imported
        `imports` (the request's own, from the worker's scan): the first probed package's; -1 for
        none."""
        return next((i for i, package in enumerate(self.packages) if package in imports), -1)

    def fork(self, fds, pages=-1):
        """A child on these fds (see CHILD_FDS), which writes ahead the template's list of pages
        of that index (-1: none); its pid."""
        socket.send_fds(self.sock, [b"fork %d %d" % (self.tasks, pages)],
                        [fd for fd in fds if fd is not None])
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
        from sandbox_runner.pages import probe_all
        from sandbox_runner.preload import installed, preload

        modules = installed(modules)
        if modules:
            preload(modules)
            gc.collect()
            gc.freeze()
            # A child of a template this large takes milliseconds to tear down: a holder does
            # it, after the child's exit status is out (_native.hold_memory). Below, the holder
            # would cost the next child's clean-up more than it saves.
            self.by_name[PRELOADED] = Template(
                child_main, {*close_in_template, self.bare.fd},
                probe_all(modules),  # from this memory, which the template then shares
                resident_bytes() >= HOLD_MEMORY_FROM_MIB << 20)
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
