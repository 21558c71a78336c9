"""The in-container runner: forks one child per execution and reports how it ended.

Standard library only. It speaks to the worker over its attached stdin/stdout with frames of a
4-byte big-endian length followed by a JSON object (the wire format is also described in
service/runner_protocol.py; a contract test keeps the two in step).

Per execution: a child is forked, moved to its own session, made the OOM killer's first choice,
switched to the unprivileged sandbox uid, given a fresh working directory on the tmpfs and a
fresh environment, and runs the code (in the forked interpreter, where the scientific stack is
already imported, or in a freshly exec'd one). The runner reads its output up to the cap, kills
the process group at the timeout or the cap, and answers. Then it cleans up as the sandbox uid
(every process killed, every file removed) and announces that it is ready again. Files the
request asked back are read by that next child, as the sandbox uid, before it cleans up.

A `session` request instead makes the child keep its namespace and run one cell per `cell`
request until the worker closes the stream; such a container serves that session alone.
"""

import ast
import base64
import fnmatch
import gc
import json
import linecache
import os
import resource
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import traceback
import types

PROTOCOL_VERSION = 1
SANDBOX_UID = SANDBOX_GID = 10001
SCRATCH_DIRS = ("/tmp", "/dev/shm", "/dev/mqueue")
WORK_ROOT = "/tmp"
WORKDIR = "/tmp/work"
CLEAN, DIRTY = b"1", b"0"
STD_STREAMS = None  # set by main(): the children's sys.stdin, sys.stdout, sys.stderr
CLEANUP_TIMEOUT_S = 10
ACCEPT_TIMEOUT_S = 60
PYTHON = "/usr/bin/python3"
READ_CHUNK = 65536
DRAIN_AFTER_EXIT_S = 0.05
CLEANUP_ROUNDS = 200
SANDBOX_NICE = 10
MAX_FRAME = 512 * 1024 * 1024
FRAME = struct.Struct(">I")
MAX_WALK_ENTRIES = 20000  # directory entries looked at when matching return_files patterns
INTERRUPT_GRACE_S = 2.0  # a session cell past its timeout gets this long to stop after SIGINT
FIGURES_MODULE = "sandbox_png_backend"  # the image's matplotlib backend (MPLBACKEND below)
CLOCK_REALTIME_COARSE = 5  # Linux's; the clock of file timestamps
CHILD_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "MPLBACKEND": "module://" + FIGURES_MODULE,
    "MPLCONFIGDIR": "/tmp/matplotlib",  # writable (else matplotlib warns on every import)
}
MEMORY_EVENT_FILES = (  # (file, its OOM-kill count, its count of allocations at the limit)
    ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill", None),  # cgroup v1
    ("/sys/fs/cgroup/memory/memory.failcnt", None, ""),
    ("/sys/fs/cgroup/memory.events", "oom_kill", "max"),  # cgroup v2
)


# --- framing -------------------------------------------------------------------------------------

def read_exact(fd, size):
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd):
    header = read_exact(fd, 4)
    if header is None:
        return None
    (size,) = struct.unpack(">I", header)
    if size > MAX_FRAME:
        raise ValueError("frame too large")
    body = read_exact(fd, size)
    return None if body is None else json.loads(body)


def encode_frame(message):
    body = json.dumps(message, separators=(",", ":")).encode()
    return FRAME.pack(len(body)) + body


def write_frame(fd, message):
    data = encode_frame(message)
    while data:
        data = data[os.write(fd, data):]


# --- the child ----------------------------------------------------------------------------------
#
# The child of the next execution is forked and sandboxed ahead of time (a "zygote"): it moves
# to its own session, becomes the OOM killer's first choice, drops to the sandbox uid and waits
# for its request on a pipe. Forking a process with the scientific stack imported, and the
# copy-on-write faults of its set-up, are then paid while the container is idle, not while a
# caller waits. Its exit status comes from the kernel alone (it holds no pipe to report one on).

def drop_privileges():
    os.setgroups([])
    os.setgid(SANDBOX_GID)
    os.setuid(SANDBOX_UID)
    # No RLIMIT_NPROC: it counts the uid's processes across every container on the host, so one
    # fork bomb would starve its neighbours. The container's pids limit bounds each alone.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def apply_limits(req):
    fsize = req["max_file_bytes"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    # A CPU-time backstop behind the wall-clock timeout the runner enforces.
    cpu = int(req["timeout_s"]) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def name_parts(name):
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError("bad file name: %r" % name)
    return parts


def open_beneath(root, parts, flags, make_dirs=False):
    """Open root/<parts> without following a symlink anywhere below root."""
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            if make_dirs:
                try:
                    os.mkdir(part, 0o755, dir_fd=dir_fd)
                except FileExistsError:
                    pass
            below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = below
        return os.open(parts[-1], flags | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def write_files(workdir, files, replace=False):
    """Write the request's files as the sandbox uid, never following a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    for name, b64 in files.items():
        fd = open_beneath(workdir, name_parts(name), flags, make_dirs=True)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64decode(b64))


def python_exit_code(exc):
    """What CPython's own exit would return for a SystemExit (printing a non-int message)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:
        pass
    return 1


def open_std_streams():
    """The children's sys.stdin/stdout/stderr, made once in the runner over fds 0, 1 and 2 (which
    each child points at its own pipes): a child building them itself pays copy-on-write faults."""
    return (
        open(0, encoding="utf-8", errors="surrogateescape", closefd=False),
        open(1, "w", encoding="utf-8", errors="surrogateescape", closefd=False),
        open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1),
    )


def reseed():
    """Fresh random state for the next child, set in the runner before it forks (cheaper there).
    Python's own `random` reseeds itself in every forked child."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(int.from_bytes(os.urandom(4), "little"))


def prepare_main(path):
    """Everything a forked run needs that does not depend on the code: done before it arrives."""
    import atexit  # noqa: F401  (imported now, used at exit)
    import threading  # noqa: F401

    sys.stdin, sys.stdout, sys.stderr = STD_STREAMS
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = STD_STREAMS
    sys.argv = [path]
    sys.path[0] = os.path.dirname(path)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    return main


def run_forked(code, path, main):
    """Run `code` as __main__ in this (forked) interpreter, with CPython's exit semantics."""
    import atexit
    import threading

    status = 0
    try:
        exec(compile(code, path, "exec"), main.__dict__)
    except SystemExit as exc:
        status = python_exit_code(exc)
    except BaseException as exc:
        tb = exc.__traceback__
        traceback.print_exception(type(exc), exc, tb.tb_next if tb else None)
        status = 1
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    for fd in (1, 2):  # the output ends now, not once the kernel has torn the process down
        os.close(fd)
    os._exit(status)


# --- a session's child: one namespace, one cell per frame ----------------------------------------
#
# Like a Jupyter kernel: the value of a cell's last expression comes back (its repr), figures a
# cell left open are saved, and a cell past its timeout is interrupted (the runner sends SIGINT;
# KeyboardInterrupt is raised only while a cell's code runs, so it cannot break the loop here).

interrupt_armed = False


def on_interrupt(signum, frame):
    if interrupt_armed:
        raise KeyboardInterrupt


def serve_cells(req, ctl_r, main, status_w):
    """Never returns: run one cell per frame on the control pipe until it closes."""
    try:
        fsize = req["max_file_bytes"]
        # No CPU-time backstop: it would add up every cell of the session.
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        signal.signal(signal.SIGINT, on_interrupt)
    except BaseException:
        os._exit(127)
    for count in range(1, sys.maxsize):
        try:
            cell = read_frame(ctl_r)
        except BaseException:
            os._exit(126)
        if cell is None:  # the session is closed
            os._exit(0)
        report = run_cell(cell, "<cell-%d>" % count, main.__dict__)
        try:
            write_frame(status_w, report)
        except OSError:
            os._exit(126)


def run_cell(cell, name, namespace):
    """Run one cell; its status, the repr of its last expression, and the files it wrote."""
    global interrupt_armed
    since_ns = time.clock_gettime_ns(CLOCK_REALTIME_COARSE)  # the clock of file times
    status, value = 0, None
    try:
        write_files(WORKDIR, cell.get("files") or {}, replace=True)
        interrupt_armed = True
        try:
            value = evaluate(cell["code"], name, namespace, cell["max_output_bytes"])
            save_figures()
        finally:
            interrupt_armed = False
    except SystemExit as exc:
        status = python_exit_code(exc)
    except BaseException as exc:
        print_traceback(exc, name)
        status = 1
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    report = {"status": status, "value": value}
    if cell.get("return_files"):
        report.update(collect_files(WORKDIR, cell, since_ns))
    return report


def evaluate(code, name, namespace, cap):
    """Run a cell's code; the repr of its last expression (cut at cap), or None."""
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)  # for tracebacks
    tree = ast.parse(code, name)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, name, "exec"), namespace)
    if last is None or code.rstrip().endswith(";"):  # a trailing ";" hides the value, as in Jupyter
        return None
    value = eval(compile(ast.Expression(last.value), name, "eval"), namespace)
    if value is None:
        return None
    namespace["_"] = value
    return repr(value)[:cap].encode("utf-8", "replace").decode()


def save_figures():
    """Figures a cell left open are shown at its end, as in a notebook (saved as PNG files)."""
    backend = sys.modules.get(FIGURES_MODULE)
    if backend is not None:
        backend.save_figures(unsaved_only=True)


def print_traceback(exc, name):
    """The traceback from the cell's frame on, without the runner's (as of an interrupt)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != name:
        tb = tb.tb_next
    report = traceback.TracebackException(type(exc), exc, tb)
    report.stack = traceback.StackSummary.from_list(
        [frame for frame in report.stack if frame.filename != __file__])
    sys.stderr.write("".join(report.format()))


def zygote_main(ctl_r, stdin_r, stdout_w, stderr_w, status_w, runner_fds, collect):
    """Never returns: sandboxes itself, waits for a request, becomes the execution."""
    try:
        os.setsid()
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")  # must precede the uid switch, which makes the file unwritable
        os.dup2(stdin_r, 0)
        os.dup2(stdout_w, 1)
        os.dup2(stderr_w, 2)
        for fd in (stdin_r, stdout_w, stderr_w, *runner_fds):
            os.close(fd)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if EXIT_WAKEUP[0] is not None:  # the runner's SIGCHLD wake-up is not the child's
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(EXIT_WAKEUP[0])
            os.close(EXIT_WAKEUP[1])
        drop_privileges()
        # Below the runner in its container's CPU share, so that a hundred busy processes of a
        # fork bomb cannot keep the runner from killing them at the deadline.
        os.nice(SANDBOX_NICE)
        if collect is not None:
            send_collected(*collect)
        # Clean up after the previous execution from here, as the sandbox uid: nothing else of
        # that uid may live on, and what it wrote in the scratch places goes.
        os.write(status_w, CLEAN if scrub() else DIRTY)
        os.mkdir(WORKDIR, 0o700)
        os.chdir(WORKDIR)
        path = os.path.join(WORKDIR, "main.py")
        main = prepare_main(path)
        env = dict(CHILD_ENV, HOME=WORKDIR, TMPDIR=WORK_ROOT)
        os.environ.clear()
        os.environ.update(env)
        req = read_frame(ctl_r)
    except BaseException:
        os._exit(126)
    if req is None:  # discarded by the runner
        os._exit(0)
    if req.get("op") == "session":
        serve_cells(req, ctl_r, main, status_w)
    # A one-shot run's exit status is taken from the kernel alone: the code could write
    # anything on a pipe it holds, so it holds none.
    os.close(ctl_r)
    os.close(status_w)
    try:
        apply_limits(req)
        write_files(WORKDIR, req.get("files") or {})
        with open(path, "x", encoding="utf-8", errors="surrogateescape") as f:
            f.write(req["code"])
        argv = [str(a) for a in req.get("argv") or []]
        if req.get("fresh_interpreter"):
            os.execve(PYTHON, [PYTHON, "-B", "main.py", *argv], env)
        sys.argv = [path, *argv]
        run_forked(req["code"], path, main)
    except BaseException:
        try:
            os.write(2, ("sandbox setup failed: %s" % traceback.format_exc()).encode())
        finally:
            os._exit(127)


EXIT_WAKEUP = [None, None]  # without pidfds: a pipe SIGCHLD writes to (read end, write end)


def exit_fd(pid):
    """An fd that polls readable when the child exits: its pidfd, or where the kernel has none
    (gVisor), a pipe every SIGCHLD writes a byte to."""
    if EXIT_WAKEUP[0] is None:
        try:
            return os.pidfd_open(pid)
        except OSError:
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            EXIT_WAKEUP[:] = [r, w]
            signal.signal(signal.SIGCHLD, lambda signum, frame: None)
            signal.set_wakeup_fd(w)
    return EXIT_WAKEUP[0]


class Zygote:
    """The next execution's child, forked and sandboxed, waiting on its control pipe."""

    def __init__(self, runner_fds, collect=None):
        """collect: the previous request, when the child is to send back the files it asked for."""
        ctl_r, self.ctl_w = os.pipe()
        stdin_r, self.stdin_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.status_r, status_w = os.pipe()  # close-on-exec: a fresh interpreter just closes it
        self.files_r = files_w = None
        if collect is not None:
            self.files_r, files_w = os.pipe()
        reseed()
        self.pid = os.fork()
        if self.pid == 0:
            for fd in (self.ctl_w, self.stdin_w, self.out_r, self.err_r, self.status_r):
                os.close(fd)
            if collect is not None:
                os.close(self.files_r)
                collect = (files_w, collect)
            zygote_main(ctl_r, stdin_r, out_w, err_w, status_w, runner_fds, collect)
        for fd in (ctl_r, stdin_r, out_w, err_w, status_w):
            os.close(fd)
        if files_w is not None:
            os.close(files_w)
        for fd in (self.stdin_w, self.out_r, self.err_r, self.status_r):
            os.set_blocking(fd, False)
        self.pidfd = exit_fd(self.pid)
        self.reaped = False

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
        """Give the child its request (blocking; the child reads it all before anything else)."""
        self.send(req)  # if the child died before reading it, its exit status will tell
        os.close(self.ctl_w)

    def send(self, message):
        """One frame on the control pipe; False if the child is gone."""
        data = encode_frame(message)
        try:
            while data:
                data = data[os.write(self.ctl_w, data):]
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

    def wait(self):
        """Reap the child; its wait status."""
        _, status = os.waitpid(self.pid, 0)
        self.reaped = True
        return status

    def close(self):
        kill_group(self.pid)
        if not self.reaped:
            self.wait()
        for fd in (self.out_r, self.err_r, self.status_r):
            os.close(fd)
        if self.pidfd != EXIT_WAKEUP[0]:
            os.close(self.pidfd)

    def exited(self):
        """Whether the child has exited (it stays waitable: WNOWAIT). Without a pidfd, what
        woke the poll was a SIGCHLD of some child: its byte is read away here."""
        if self.pidfd == EXIT_WAKEUP[0]:
            try:
                while os.read(self.pidfd, 512):
                    pass
            except BlockingIOError:
                pass
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return self.reaped or os.waitid(os.P_PID, self.pid, flags) is not None


# --- files asked back: read as the sandbox uid, never through a symlink ---------------------------

TOO_BIG = object()


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


def collect_files(root, req, since_ns=0):
    """{"files": {name: base64}, "files_truncated": bool}: regular files under root matching the
    request's patterns (and written since since_ns), within its count and size caps."""
    names, truncated = matching_files(root, req.get("return_files") or ())
    files, room = {}, req["max_return_bytes"]
    for name in names:
        data = read_regular(root, name.split("/"), room, since_ns)
        if data is None:
            continue
        if data is TOO_BIG or len(files) >= req["max_return_files"]:
            truncated = True
            continue
        files[name] = base64.b64encode(data).decode()
        room -= len(data)
    return {"files": files, "files_truncated": truncated}


def matching_files(root, patterns):
    """Sorted names (relative to root) of the files matching any pattern, without entering a
    symlinked directory; and whether the walk was cut short."""
    split = [collapse_stars(p.split("/")) for p in patterns]
    found, seen = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        seen += len(dirnames) + len(filenames)
        if seen > MAX_WALK_ENTRIES:
            return sorted(found), True
        rel = os.path.relpath(dirpath, root)
        base = [] if rel == "." else rel.split("/")
        for name in filenames:
            parts = [*base, name]
            if any(pattern_matches(p, parts) for p in split) and utf8("/".join(parts)):
                found.append("/".join(parts))
    return sorted(found), False


def collapse_stars(parts):
    return [p for i, p in enumerate(parts) if p != "**" or i == 0 or parts[i - 1] != "**"]


def pattern_matches(pattern, parts):
    """Whether path parts match pattern parts: `**` spans directories; as in glob, a wildcard does
    not match a name starting with a dot."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        for i in range(len(parts) + 1):
            if pattern_matches(rest, parts[i:]):
                return True
            if i < len(parts) and parts[i].startswith("."):
                return False
        return False
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and pattern_matches(rest, parts[1:])


def utf8(name):
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_regular(root, parts, room, since_ns):
    """A regular file's bytes; None for anything else (a symlink on the way, a directory, a FIFO)
    or a file older than since_ns; TOO_BIG past room bytes."""
    try:
        fd = open_beneath(root, parts, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns < since_ns:
            return None
        if st.st_size > room:
            return TOO_BIG
        data = f.read(room + 1)
    return TOO_BIG if len(data) > room else data


def read_until_eof(fd, timeout_s):
    """All a pipe gives until its writer closes it; None if that takes longer than timeout_s."""
    deadline = time.monotonic() + timeout_s
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            return None
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# --- supervising one execution -----------------------------------------------------------------

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


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Supervision:
    """Pumps stdin and output until the child ends, the deadline passes or output overflows."""

    def __init__(self, child, req, captures):
        self.child = child
        self.deadline = time.monotonic() + req["timeout_s"]
        self.stdin_data = memoryview(base64.b64decode(req.get("stdin") or ""))
        self.captures = {c.fd: c for c in captures}
        self.poller = select.poll()
        self.timed_out = self.output_limited = False
        self.drain_until = None

    def run(self):
        child = self.child
        for fd in self.captures:
            self.poller.register(fd, select.POLLIN)
        self.poller.register(child.pidfd, select.POLLIN)
        if self.stdin_data:
            self.poller.register(child.stdin_w, select.POLLOUT)
        else:
            self.close_stdin()
        while self.captures:
            now = time.monotonic()
            if self.drain_until is not None and now >= self.drain_until:
                break
            if now >= self.deadline:
                self.timed_out = True
                kill_group(child.pid)
                self.deadline = float("inf")
            limit = min(self.deadline, self.drain_until or float("inf")) - now
            timeout_ms = None if limit == float("inf") else max(0.0, limit) * 1000
            for fd, _ in self.poller.poll(timeout_ms):
                self.on_ready(fd)
        self.close_stdin()
        if not self.timed_out and not self.output_limited:
            self.await_exit()

    def await_exit(self):
        """The output has ended: the child is exiting, or it closed its output and goes on.
        Wait for the kernel's word that it exited, within its time."""
        if self.drain_until is not None:  # it has exited already
            return
        poller = select.poll()
        poller.register(self.child.pidfd, select.POLLIN)
        while not self.child.exited():
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                self.timed_out = True
                return

    def on_ready(self, fd):
        child = self.child
        if fd == child.pidfd:
            if child.exited():
                self.poller.unregister(fd)
                self.ended()
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
            if not capture.read():
                self.poller.unregister(fd)
                del self.captures[fd]
            elif capture.truncated and not self.output_limited:
                self.output_limited = True
                kill_group(child.pid)

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


def result_message(job_id, exit_code, signum, captures, oom, oom_before, run_ms):
    """The fields every `result` carries."""
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
    }


def execute(child, req, oom):
    oom_before = oom.read()
    started = time.monotonic()
    cap = req["max_output_bytes"]
    captures = (Capture(child.out_r, cap), Capture(child.err_r, cap))
    child.hand_over(req)
    supervision = Supervision(child, req, captures)
    supervision.run()
    run_ms = (time.monotonic() - started) * 1000
    kill_group(child.pid)  # whatever is left of its group once the main process has ended
    exit_code, signum = exit_of(child.wait())
    return {
        **result_message(req["id"], exit_code, signum, captures, oom, oom_before, run_ms),
        "timed_out": supervision.timed_out,
        "output_limited": supervision.output_limited,
    }


# --- supervising a session's cells ---------------------------------------------------------------

class CellSupervision:
    """Pumps one cell's output until the child reports the cell done or dies. Past the timeout
    the cell is interrupted (SIGINT); if it does not stop within the grace, the child is killed
    and the session is over. Output past the cap is read and dropped: the session lives on.
    If the worker's stream closes meanwhile (the worker died), the session is over at once."""

    def __init__(self, child, msg, captures, proto_in):
        self.child = child
        self.proto_in = proto_in
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
        for fd in (*self.captures, self.child.pidfd, self.child.status_r):
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
        elif fd == self.child.pidfd:
            self.died = self.child.exited()
        elif fd == self.child.status_r:
            self.read_report()
        elif not self.captures[fd].read():
            self.poller.unregister(fd)
            del self.captures[fd]
        elif self.captures[fd].truncated:
            self.output_limited = True

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
                if fd in self.captures and not self.captures[fd].read():
                    self.poller.unregister(fd)
                    del self.captures[fd]


def execute_cell(child, msg, oom, proto_in):
    oom_before = oom.read()
    started = time.monotonic()
    cap = msg["max_output_bytes"]
    captures = (Capture(child.out_r, cap), Capture(child.err_r, cap))
    cell = CellSupervision(child, msg, captures, proto_in)
    if child.send(msg):
        cell.run()
    else:
        cell.died = True
    run_ms = (time.monotonic() - started) * 1000
    report = cell.report or {}
    exit_code, signum = report.get("status"), None
    if cell.report is None:
        kill_group(child.pid)
        exit_code, signum = exit_of(child.wait())
    elif not isinstance(exit_code, int):
        exit_code = 1
    value = report.get("value")
    result = {
        **result_message(msg["id"], exit_code, signum, captures, oom, oom_before, run_ms),
        "timed_out": cell.timed_out,
        "output_limited": captures[0].truncated or captures[1].truncated,
        "value": value if isinstance(value, str) else None,
        "session_ended": cell.report is None,
    }
    if msg.get("return_files"):
        files = report.get("files")
        result["files"] = files if isinstance(files, dict) else {}
        result["files_truncated"] = bool(report.get("files_truncated")) or cell.report is None
    return result


def serve_session(child, req, oom, proto_in, proto_out):
    """The container's one session: the waiting child keeps its namespace across `cell`
    requests, until the worker closes the stream or the child dies. Then the runner exits."""
    child.close_stdin()  # cells read EOF on stdin
    child.send(req)
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
            result = execute_cell(child, msg, oom, proto_in)
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


# --- cleaning up, in the next child, as the sandbox uid ---------------------------------------

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


# --- main loop ----------------------------------------------------------------------------------

def preload(modules):
    for name in filter(None, modules.split(",")):
        try:
            __import__(name)
        except Exception as exc:
            print("preload %s failed: %s" % (name, exc), file=sys.stderr)


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
    preload(os.environ.get("SANDBOX_PRELOAD", ""))
    global STD_STREAMS
    STD_STREAMS = open_std_streams()
    gc.collect()
    gc.freeze()  # keep the preloaded heap shared with every forked child
    oom = OomCounter()
    runner_fds = tuple({proto_in, proto_out, *oom.fds})  # each child closes these
    child = Zygote(runner_fds)
    if not child.wait_clean(CLEANUP_TIMEOUT_S):
        return 3
    ready = {"op": "ready", "protocol": PROTOCOL_VERSION, "pid": os.getpid()}
    write_frame(proto_out, ready)
    while True:
        try:
            req = read_frame(proto_in)
        except (ValueError, OSError):
            return 2
        if req is None:
            child.close()
            return 0
        if req.get("op") == "session":
            return serve_session(child, req, oom, proto_in, proto_out)
        if req.get("op") != "run":
            write_frame(proto_out, {"op": "error", "error": "unknown op %r" % req.get("op")})
            continue
        try:
            result = execute(child, req, oom)
        except Exception:
            result = {"op": "error", "id": req.get("id"), "error": traceback.format_exc()}
        if req.get("return_files") and result["op"] == "result":
            child.close()
            child = Zygote(runner_fds, collect=req)  # it reads them back before cleaning up
            result.update(child.collected(CLEANUP_TIMEOUT_S))
            write_frame(proto_out, result)
        else:
            write_frame(proto_out, result)
            child.close()
            child = Zygote(runner_fds)
        if not child.wait_clean(CLEANUP_TIMEOUT_S):
            child.close()
            return 3  # something of the last execution survived: let the worker replace us
        write_frame(proto_out, ready)


if __name__ == "__main__":
    sys.exit(main())
