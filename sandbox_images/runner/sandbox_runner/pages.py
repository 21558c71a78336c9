"""The pages a child of the preloaded template writes when its code uses one of the preloaded
modules, found once per container, so that the next child can write them ahead while it waits.

Most of a scientific snippet's time in a child is copy-on-write faults on the template's memory:
z3's first assertion on a new solver writes some 3,000 pages of the heap the template's warm-up
left (12 ms of a 20 ms run), sympy's caches 1,500 pages of objects. A child starts from the same
memory every time, so the same code writes the same pages. The runner forks a probe per module
that has a warm-up (warmup.py) before it forks the preloaded template: the probe runs the warm-up
again, as a child would run code using the module, and reads from /proc/self/pagemap which pages
of the memory it shares with the runner it now holds alone. The template keeps the lists; the
runner names one in each fork, by the packages the last request's code imported (its `imports`,
from the worker's scan, service/imports.py; runs of one kind tend to follow each other: one
problem set, many samples), and that child writes those pages
(MADV_POPULATE_WRITE, _native.touch) while it waits for its request, up to the request's coming:
a busy container's next request comes at once, and its child then writes nothing it may not
need. Where the kernel does not say (gVisor has no pagemap), there are no lists."""

import os
import signal
from array import array

from sandbox_runner.files import read_until_eof
from sandbox_runner.frames import write_all
from sandbox_runner.warmup import WARMUPS

PAGE = os.sysconf("SC_PAGE_SIZE")
PRESENT_ALONE = 1 << 63 | 1 << 56  # a pagemap entry's bits: present, mapped by this process only
PROBE_TIMEOUT_S = 30


def probe_all(modules):
    """(package, runs) for each preloaded module with a warm-up whose probe found pages; runs as
    touch() takes them."""
    found = []
    for module in modules:
        if module in WARMUPS:
            runs = probe(WARMUPS[module])
            if runs:
                found.append((module.partition(".")[0], runs))
    return found


def probe(code):
    """The pages a forked child writes running `code`, packed; b"" if it cannot tell."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            shared = writable_private()
            exec(code, {})
            write_all(w, written(shared))
        finally:
            os._exit(0)
    os.close(w)
    runs = read_until_eof(r, PROBE_TIMEOUT_S)
    os.close(r)
    if runs is None:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return runs or b""


def writable_private():
    """(start, end) of each writable private mapping of this process."""
    spans = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, perms = line.split(None, 2)[:2]
            if perms[1] == "w" and perms[3] == "p":
                start, end = span.split("-")
                spans.append((int(start, 16), int(end, 16)))
    return spans


def written(spans):
    """The pages of `spans` this process alone holds, as runs: native (start, length) pairs."""
    runs = array("Q")
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        for start, end in spans:
            entries = array("Q", os.pread(fd, (end - start) // PAGE * 8, start // PAGE * 8))
            for i, entry in enumerate(entries):
                if entry & PRESENT_ALONE == PRESENT_ALONE:
                    address = start + i * PAGE
                    if runs and runs[-2] + runs[-1] == address:
                        runs[-1] += PAGE
                    else:
                        runs.extend((address, PAGE))
    finally:
        os.close(fd)
    return runs.tobytes()

