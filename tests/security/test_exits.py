"""Exit paths: the exit code, the signal and the outcome are the process's own, exactly."""

import pytest

from tests.security.probe import Warm

EXITS = {
    "os._exit(3) from a thread": (
        "import os, threading\nthreading.Thread(target=os._exit, args=(3,)).start()\n"
        "import time; time.sleep(60)\n", 3, None, "error"),
    "os._exit in an atexit handler": (
        "import atexit, os\natexit.register(os._exit, 5)\nprint('bye')\n", 5, None, "error"),
    "sys.exit with a message from a nested call": (
        "import sys\ndef f():\n    sys.exit('it went wrong')\nf()\n", 1, None, "error"),
    "sys.exit(256) wraps like CPython": ("import sys\nsys.exit(256)\n", 0, None, "ok"),
    "sys.exit(-1)": ("import sys\nsys.exit(-1)\n", 255, None, "error"),
    "SystemExit caught and swallowed": (
        "try:\n    exit(4)\nexcept SystemExit:\n    print('kept going')\n", 0, None, "ok"),
    "IndentationError": ("def f():\nreturn 1\n", 1, None, "error"),
    "KeyboardInterrupt raised": ("raise KeyboardInterrupt\n", 1, None, "error"),
    "recursion overflow": ("def f(n):\n    return f(n + 1)\nf(0)\n", 1, None, "error"),
    "segfault through ctypes": ("import ctypes\nctypes.string_at(0)\n", None, 11, "killed"),
    "abort": ("import os\nos.abort()\n", None, 6, "killed"),
    "SIGKILL to itself": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", None, 9,
                          "killed"),
    "SIGTERM to itself, default action": (
        "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nimport time; time.sleep(5)\n",
        None, 15, "killed"),
    "segfault in a fresh interpreter": (
        "# fresh interpreter\nimport ctypes\nctypes.string_at(0)\n", None, 11, "killed"),
}


@pytest.mark.parametrize(("code", "exit_code", "signal", "outcome"), EXITS.values(),
                         ids=EXITS.keys())
def test_exit_paths(warm: Warm, code: str, exit_code: int | None, signal: int | None,
                    outcome: str) -> None:
    fresh = "fresh interpreter" in code or code.startswith("def f():\nreturn")
    result = warm.case(code, timeout=10, fresh_interpreter=fresh)
    assert (result["exit_code"], result["signal"], result["outcome"]) == (exit_code, signal,
                                                                          outcome), result


def test_syntax_error_in_a_fresh_interpreter(warm: Warm) -> None:
    result = warm.case("print('unclosed'\n", fresh_interpreter=True)
    assert (result["exit_code"], result["outcome"]) == (1, "error")
    assert "SyntaxError" in result["stderr"]


def test_sys_exit_message_goes_to_stderr(warm: Warm) -> None:
    result = warm.case("import sys\nprint('out')\nsys.exit('why')\n")
    assert (result["stdout"], result["stderr"], result["exit_code"]) == ("out\n", "why\n", 1)


@pytest.mark.parametrize("fresh", [False, True])
def test_exit_zero_before_the_asserts_is_an_exit_zero(warm: Warm, fresh: bool) -> None:
    """exit(0) ends the process with status 0, as CPython does: the asserts after it never ran.

    The result says exactly that (ok, exit 0) and nothing more: the output lacks what the asserts
    would print, which is how a caller (and the judge) tells an early exit from a pass.
    """
    code = ("def solve():\n    return 1\n"
            "exit(0)\n"
            "assert solve() == 2\n"
            "print('ALL ASSERTS RAN')\n")
    result = warm.case(code, fresh_interpreter=fresh)
    assert (result["outcome"], result["exit_code"], result["stdout"]) == ("ok", 0, "")
