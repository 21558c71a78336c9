"""A one-shot execution inside its child: the interpreter as the template prepares it for every
child (environment, std streams, a fresh __main__), and the code run in this forked interpreter
with CPython's exit semantics."""

import atexit
import builtins
import os
import sys
import traceback
import types

from sandbox_runner.config import CHILD_ENV, MAIN_PATH, WORKDIR


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


def prepare_interpreter():
    """Once, in each template before it first forks: what every child needs and would otherwise
    build itself, each paying the copy-on-write faults of it. The code's environment (the
    runner has read its own settings by then), the code's sys.stdin/stdout/stderr over fds 0, 1
    and 2, which each child points at its own pipes, and a fresh __main__ for main.py. The
    template runs no code in them; only the import path, which leads into the working directory
    the code owns, is left to each child (new_main)."""
    os.environ.clear()
    os.environ.update(CHILD_ENV)
    streams = (
        open(0, encoding="utf-8", errors="surrogateescape", closefd=False),
        open(1, "w", encoding="utf-8", errors="surrogateescape", closefd=False),
        open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1),
    )
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams
    sys.argv = [MAIN_PATH]
    main = types.ModuleType("__main__")
    main.__file__ = MAIN_PATH
    main.__builtins__ = builtins
    sys.modules["__main__"] = main


def new_main():
    """In the child, once it has cleaned up: the import path led into the working directory,
    and the fresh __main__ for main.py there."""
    sys.path[0] = WORKDIR
    return sys.modules["__main__"]


def run_forked(code, main):
    """Run `code` as __main__ (main.py) in this forked interpreter, with CPython's exit
    semantics: threads joined, atexit run, then __main__'s globals cleared (files the code
    left open are flushed as they go, as at CPython's own exit) and the std streams flushed."""
    status = 0
    try:
        exec(compile(code, MAIN_PATH, "exec"), main.__dict__)
    except SystemExit as exc:
        status = python_exit_code(exc)
    except BaseException as exc:
        tb = exc.__traceback__
        traceback.print_exception(type(exc), exc, tb.tb_next if tb else None)
        status = 1
    try:
        threading = sys.modules.get("threading")
        if threading is not None:  # as CPython's exit: only if something imported it
            threading._shutdown()
        atexit._run_exitfuncs()
        main.__dict__.clear()
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
