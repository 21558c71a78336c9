"""The in-container runner: forks one child per execution and reports how it ended.

Standard library only. It speaks to the worker over its attached stdin/stdout with frames of a
4-byte big-endian length followed by a JSON object (the wire format is also described in
service/runner_protocol.py; a contract test keeps the two in step).

Per execution: a child is forked, moved to its own session, made the OOM killer's first choice,
switched to the unprivileged sandbox uid, given a fresh working directory on the tmpfs and a
fresh environment, and runs the code (in the forked interpreter, where the scientific stack is
already imported, or in a freshly exec'd one). The runner reads its output up to the cap, kills
the process group at the timeout or the cap, and answers. Then it cleans up as the sandbox uid
(every process killed, every file removed) and announces that it is ready again.
"""

import base64
import gc
import json
import os
import random
import resource
import select
import signal
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
PYTHON = "/usr/bin/python3"
READ_CHUNK = 65536
DRAIN_AFTER_EXIT_S = 0.05
CLEANUP_ROUNDS = 200
MAX_FRAME = 512 * 1024 * 1024
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
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/opt/runner/mpl",
}
OOM_COUNTER_FILES = (
    "/sys/fs/cgroup/memory/memory.oom_control",  # cgroup v1
    "/sys/fs/cgroup/memory.events",  # cgroup v2
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


def write_frame(fd, message):
    body = json.dumps(message, separators=(",", ":")).encode()
    data = struct.pack(">I", len(body)) + body
    while data:
        data = data[os.write(fd, data):]


# --- the child ----------------------------------------------------------------------------------

def drop_privileges(nproc):
    os.setgroups([])
    os.setgid(SANDBOX_GID)
    os.setuid(SANDBOX_UID)
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def apply_limits(req):
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    fsize = req["max_file_bytes"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    # A CPU-time backstop behind the wall-clock timeout the runner enforces.
    cpu = int(req["timeout_s"]) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def write_files(workdir, files):
    """Write the request's files as the sandbox uid, never following a symlink."""
    for name, b64 in files.items():
        parts = name.split("/")
        if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError("bad file name: %r" % name)
        parent = workdir
        for part in parts[:-1]:
            parent = os.path.join(parent, part)
            try:
                os.mkdir(parent, 0o755)
            except FileExistsError:
                pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(os.path.join(workdir, name), flags, 0o644)
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


def run_forked(code, path):
    """Run `code` as __main__ in this (forked) interpreter, with CPython's exit semantics."""
    import atexit
    import threading

    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", errors="surrogateescape", closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", errors="surrogateescape",
                                       closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace",
                                       closefd=False, buffering=1)
    sys.argv = [path]
    sys.path[0] = os.path.dirname(path)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
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
    os._exit(status)


def child_main(req, stdin_r, stdout_w, stderr_w, proto_fds):
    """Never returns: becomes the sandboxed execution."""
    try:
        os.setsid()
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")  # must precede the uid switch, which makes the file unwritable
        os.dup2(stdin_r, 0)
        os.dup2(stdout_w, 1)
        os.dup2(stderr_w, 2)
        for fd in (stdin_r, stdout_w, stderr_w, *proto_fds):
            os.close(fd)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        drop_privileges(req["max_processes"])
        apply_limits(req)
        workdir = os.path.join(WORK_ROOT, "run-%s" % req["id"])
        os.mkdir(workdir, 0o700)
        os.chdir(workdir)
        write_files(workdir, req.get("files") or {})
        path = os.path.join(workdir, "main.py")
        with open(path, "x", encoding="utf-8", errors="surrogateescape") as f:
            f.write(req["code"])
        env = dict(CHILD_ENV, HOME=workdir, TMPDIR=WORK_ROOT)
        os.environ.clear()
        os.environ.update(env)
        if req.get("fresh_interpreter"):
            os.execve(PYTHON, [PYTHON, "-B", "main.py"], env)
        run_forked(req["code"], path)
    except BaseException:
        try:
            os.write(2, ("sandbox setup failed: %s" % traceback.format_exc()).encode())
        finally:
            os._exit(127)


# --- supervising one execution -----------------------------------------------------------------

def read_oom_kills():
    for path in OOM_COUNTER_FILES:
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return None


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


def supervise(req, pid, pidfd, stdin_w, captures):
    """Pump stdin and output until the child ends, the deadline passes or output overflows."""
    deadline = time.monotonic() + req["timeout_s"]
    stdin_data = memoryview(base64.b64decode(req.get("stdin") or ""))
    poller = select.poll()
    by_fd = {c.fd: c for c in captures}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    if stdin_data:
        poller.register(stdin_w, select.POLLOUT)
    else:
        os.close(stdin_w)
        stdin_w = None
    timed_out = output_limited = exited = False
    drain_until = None
    while by_fd:
        now = time.monotonic()
        if drain_until is not None and now >= drain_until:
            break
        if not exited and now >= deadline:
            timed_out = True
            kill_group(pid)
            deadline = float("inf")
        limit = min(deadline, drain_until or float("inf")) - now
        for fd, _ in poller.poll(max(0, limit) * 1000 if limit != float("inf") else None):
            if fd == pidfd:
                poller.unregister(pidfd)
                exited = True
                drain_until = time.monotonic() + DRAIN_AFTER_EXIT_S
            elif fd == stdin_w:
                try:
                    stdin_data = stdin_data[os.write(stdin_w, stdin_data[:READ_CHUNK]):]
                except OSError:  # the code closed its stdin: the rest is not wanted
                    stdin_data = stdin_data[:0]
                if not stdin_data:
                    poller.unregister(stdin_w)
                    os.close(stdin_w)
                    stdin_w = None
            else:
                capture = by_fd[fd]
                if not capture.read():
                    poller.unregister(fd)
                    del by_fd[fd]
                elif capture.truncated and not output_limited:
                    output_limited = True
                    kill_group(pid)
    if stdin_w is not None:
        os.close(stdin_w)
    return timed_out, output_limited


def execute(req, proto_fds):
    oom_before = read_oom_kills()
    started = time.monotonic()
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in (stdin_w, out_r, err_r):
            os.close(fd)
        child_main(req, stdin_r, out_w, err_w, proto_fds)
    for fd in (stdin_r, out_w, err_w):
        os.close(fd)
    for fd in (stdin_w, out_r, err_r):
        os.set_blocking(fd, False)
    pidfd = os.pidfd_open(pid)
    cap = req["max_output_bytes"]
    captures = (Capture(out_r, cap), Capture(err_r, cap))
    try:
        timed_out, output_limited = supervise(req, pid, pidfd, stdin_w, captures)
    finally:
        kill_group(pid)  # whatever is left of its group once the main process has ended
        _, status = os.waitpid(pid, 0)
        run_ms = (time.monotonic() - started) * 1000
        for fd in (pidfd, out_r, err_r):
            os.close(fd)
    oom_after = read_oom_kills()
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    return {
        "op": "result",
        "id": req["id"],
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": signum,
        "stdout": captures[0].text(),
        "stderr": captures[1].text(),
        "stdout_truncated": captures[0].truncated,
        "stderr_truncated": captures[1].truncated,
        "timed_out": timed_out,
        "output_limited": output_limited,
        "oom_killed": oom_before is not None and (oom_after or 0) > oom_before,
        "run_ms": round(run_ms, 3),
    }


# --- cleaning up as the sandbox uid ------------------------------------------------------------

def as_sandbox(fn):
    """Run fn() in a child switched to the sandbox uid; True when it exits 0."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.setgroups([])
            os.setgid(SANDBOX_GID)
            os.setuid(SANDBOX_UID)
            status = 0 if fn() else 1
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


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


def main():
    # Keep the protocol off fds 0 and 1 so nothing can write into it by accident.
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    preload(os.environ.get("SANDBOX_PRELOAD", ""))
    gc.collect()
    gc.freeze()  # keep the preloaded heap shared with every forked child
    proto = (proto_in, proto_out)
    ready = {"op": "ready", "protocol": PROTOCOL_VERSION, "pid": os.getpid()}
    write_frame(proto_out, ready)
    while True:
        try:
            req = read_frame(proto_in)
        except (ValueError, OSError):
            return 2
        if req is None:
            return 0
        if req.get("op") != "run":
            write_frame(proto_out, {"op": "error", "error": "unknown op %r" % req.get("op")})
            continue
        try:
            result = execute(req, proto)
        except Exception:
            result = {"op": "error", "id": req.get("id"), "error": traceback.format_exc()}
        write_frame(proto_out, result)
        if not as_sandbox(scrub):
            return 3  # something of the last execution survived: let the worker replace us
        write_frame(proto_out, ready)


if __name__ == "__main__":
    sys.exit(main())
