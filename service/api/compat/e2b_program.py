"""The program an E2B-router script runs as, inside the sandbox: the script as a notebook cell.

It runs the script as E2B's code interpreter runs a cell (the value of its last expression is
the cell's result), and reports that value, or the exception that ended the cell, on a line of
stdout the service takes out. The line carries a nonce the program draws when it starts and
writes first: the script's child processes, which never see it, cannot forge that line.
"""

PROGRAM = r'''
import ast, json, linecache, os, pprint, sys, traceback


def _cell(code, out, nonce):
    report = {"value": None, "error": None}
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    linecache.cache["<cell>"] = (len(code), None, code.splitlines(True), "<cell>")
    try:
        tree = ast.parse(code, "<cell>")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None and not code.rstrip().endswith(";"):
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
            if value is not None:
                report["value"] = repr(value) if isinstance(value, str) else pprint.pformat(
                    value, width=79, sort_dicts=False)
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
            tb = tb.tb_next
        report["error"] = {"name": type(exc).__name__, "value": str(exc),
                           "traceback": "".join(traceback.format_exception(type(exc), exc, tb))}
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os.write(out, ("\n" + nonce + json.dumps(report) + "\n").encode())


_out = os.dup(1)  # not inherited by the script's child processes
_nonce = os.urandom(16).hex()
os.write(_out, (_nonce + "\n").encode())
_cell(%(code)r, _out, _nonce)
'''


def program(code: str) -> str:
    return PROGRAM % {"code": code}
