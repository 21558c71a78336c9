"""A cell shown as IPython's terminal shell shows it, for clients of IPython-backed sandboxes
(NeMo-Skills): the last expression's value as `Out[n]: ...` on stdout, pretty-printed, and an
exception's traceback on stdout in one of IPython's verbosity modes.

Plain and Minimal follow IPython's layout line for line; Context and Verbose follow Context's
(no colours, no local variables).
"""

import hashlib
import linecache
import pprint
import sys
import traceback

MODES = ("Plain", "Minimal", "Context", "Verbose")
RULE = "-" * 75
CONTEXT_LINES = 2  # around the line of a frame, in Context mode
CHAINED = {True: "\nThe above exception was the direct cause of the following exception:\n\n",
           False: "\nDuring handling of the above exception, another exception occurred:\n\n"}


def cell_name(code, count):
    """The file name IPython gives a cell (its number and a digest of its code)."""
    digest = hashlib.sha1(code.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return "<ipython-input-%d-%s>" % (count, digest)


def show_value(value, count):
    """What IPython's display hook writes for a cell's value (never called for None)."""
    text = repr(value) if isinstance(value, str) else pprint.pformat(value, width=79,
                                                                      sort_dicts=False)
    if "\n" in text:
        text = "\n" + text
    sys.stdout.write("Out[%d]: %s\n" % (count, text))


def show_traceback(exc, first_frame, mode):
    """Write exc's traceback, from first_frame on (the cell's), as IPython does in `mode`."""
    sys.stdout.write(format_chain(exc, first_frame, mode, set()))


def format_chain(exc, tb, mode, seen):
    """The exceptions exc was raised from or during first, as Python shows them."""
    seen.add(id(exc))
    head = ""
    cause = exc.__cause__ if exc.__cause__ is not None else (
        None if exc.__suppress_context__ else exc.__context__)
    if cause is not None and id(cause) not in seen:
        head = format_chain(cause, cause.__traceback__, mode, seen)
        head += CHAINED[exc.__cause__ is not None]
    return head + format_one(exc, tb, mode)


def format_one(exc, tb, mode):
    last = "".join(traceback.format_exception_only(type(exc), exc)).splitlines()[-1] + "\n"
    if mode == "Minimal":
        return last
    if isinstance(exc, SyntaxError):
        return syntax_error(exc) + last
    frames = traceback.extract_tb(tb)
    if mode == "Plain":
        return "Traceback (most recent call last):\n" + "".join(map(plain_frame, frames)) + last
    header = "%s%s\n" % (type(exc).__name__.ljust(42), "Traceback (most recent call last)")
    body = "\n".join(context_frame(frame) for frame in frames)
    return "%s\n%s%s\n%s" % (RULE, header, body, last)


def frame_place(frame):
    if frame.filename.startswith("<ipython-input-"):
        return "File %s:%d" % (frame.filename, frame.lineno)
    return "File %s:%d, in %s" % (frame.filename, frame.lineno, frame.name)


def plain_frame(frame):
    line = (frame.line or "").strip()
    return "  %s\n" % frame_place(frame) + ("    %s\n" % line if line else "")


def context_frame(frame):
    lines = [frame_place(frame)]
    first = max(1, frame.lineno - CONTEXT_LINES)
    width = len(str(frame.lineno + CONTEXT_LINES))
    for number in range(first, frame.lineno + CONTEXT_LINES + 1):
        text = linecache.getline(frame.filename, number)
        if not text:
            break
        arrow = "---->" if number == frame.lineno else "     "
        lines.append("%s %s %s" % (arrow, str(number).rjust(width), text.rstrip()))
    return "\n".join(lines) + "\n"


def syntax_error(exc):
    """A syntax error's place, line and caret, without 'Traceback', as IPython shows it."""
    text = exc.text or ""
    if not text.strip():
        return "  File %s:%s\n" % (exc.filename, exc.lineno)
    stripped = text.lstrip()
    shown = "  File %s:%s\n    %s\n" % (exc.filename, exc.lineno, stripped.rstrip("\n"))
    if exc.offset is None:
        return shown
    column = max(0, exc.offset - 1 - (len(text) - len(stripped)))
    return shown + "    %s^\n" % (" " * column)
