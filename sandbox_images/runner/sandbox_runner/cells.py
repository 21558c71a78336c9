"""A session's child: one namespace, one cell per frame on the control pipe.

Like a Jupyter kernel: the value of a cell's last expression comes back (its repr), figures a
cell left open are saved, and a cell past its timeout is interrupted (the runner sends SIGINT;
KeyboardInterrupt is raised only while a cell's code runs, so it cannot break the loop here).
"""

import ast
import linecache
import os
import resource
import signal
import sys
import time
import traceback

from sandbox_runner import ipython
from sandbox_runner.child import python_exit_code
from sandbox_runner.config import CLOCK_REALTIME_COARSE, FIGURES_MODULE, WORKDIR
from sandbox_runner.files import collect_files, write_files
from sandbox_runner.frames import read_frame, write_frame

RUNNER_CODE = os.path.dirname(os.path.abspath(__file__)) + os.sep  # frames not to show

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
        report = run_cell(cell, count, main.__dict__)
        try:
            write_frame(status_w, report)
        except OSError:
            os._exit(126)


def run_cell(cell, count, namespace):
    """Run one cell; its status, the repr of its last expression, and the files it wrote.
    A cell asking for IPython's display (`ipython`: a traceback mode) also gets its value and
    its traceback written on stdout, as IPython's shell writes them."""
    global interrupt_armed
    since_ns = time.clock_gettime_ns(CLOCK_REALTIME_COARSE)  # the clock of file times
    mode = cell.get("ipython")
    name = ipython.cell_name(cell["code"], count) if mode else "<cell-%d>" % count
    status, value = 0, None
    try:
        write_files(WORKDIR, cell.get("files") or {}, replace=True)
        interrupt_armed = True
        try:
            value = shown_value(evaluate(cell["code"], name, namespace), mode, count,
                                cell["max_output_bytes"])
            save_figures()
        finally:
            interrupt_armed = False
    except SystemExit as exc:
        status = python_exit_code(exc)
    except BaseException as exc:
        tb = cell_frames(exc, name)
        if not mode:
            print_traceback(exc, tb)
        elif not isinstance(exc, KeyboardInterrupt):  # the interrupt at a timeout says it all
            ipython.show_traceback(exc, tb, mode)
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


NO_VALUE = object()


def evaluate(code, name, namespace):
    """Run a cell's code; the value of its last expression, or NO_VALUE."""
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)  # for tracebacks
    tree = ast.parse(code, name)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, name, "exec"), namespace)
    if last is None or code.rstrip().endswith(";"):  # a trailing ";" hides the value, as in Jupyter
        return NO_VALUE
    value = eval(compile(ast.Expression(last.value), name, "eval"), namespace)
    if value is None:
        return NO_VALUE
    namespace["_"] = value
    return value


def shown_value(value, mode, count, cap):
    """The repr of a cell's value (cut at cap), or None; shown on stdout for IPython's display."""
    if value is NO_VALUE:
        return None
    if mode:
        ipython.show_value(value, count)
    return repr(value)[:cap].encode("utf-8", "replace").decode()


def save_figures():
    """Figures a cell left open are shown at its end, as in a notebook (saved as PNG files)."""
    backend = sys.modules.get(FIGURES_MODULE)
    if backend is not None:
        backend.save_figures(unsaved_only=True)


def cell_frames(exc, name):
    """The traceback from the cell's frame on, without the runner's (as of an interrupt)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != name:
        tb = tb.tb_next
    return tb


def print_traceback(exc, tb):
    report = traceback.TracebackException(type(exc), exc, tb)
    report.stack = traceback.StackSummary.from_list(
        [frame for frame in report.stack if not frame.filename.startswith(RUNNER_CODE)])
    sys.stderr.write("".join(report.format()))
