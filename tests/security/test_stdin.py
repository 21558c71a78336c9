"""Standard input: none, huge, binary; code that waits on it forever."""

import hashlib
import json

import pytest

from tests.security.probe import Warm


def test_huge_stdin_is_read_whole(warm: Warm) -> None:
    data = "".join(f"{i} line of input\n" for i in range(200_000))  # ~3.7 MB
    code = ("import hashlib, sys\n"
            "data = sys.stdin.buffer.read()\n"
            "print(len(data), hashlib.sha256(data).hexdigest())\n")
    result = warm.case(code, stdin=data)
    raw = data.encode()
    assert result["stdout"] == f"{len(raw)} {hashlib.sha256(raw).hexdigest()}\n"


def test_huge_stdin_never_read(warm: Warm) -> None:
    result = warm.case("print('ignored it')\n", stdin="z" * (3 << 20))
    assert (result["outcome"], result["stdout"]) == ("ok", "ignored it\n")


def test_stdin_echoed_while_it_streams(warm: Warm) -> None:
    """Reading stdin while writing as much to stdout: no deadlock between the two pipes."""
    data = "0123456789abcdef" * (1 << 17)  # 2 MiB
    code = ("import sys\n"
            "while chunk := sys.stdin.buffer.read1(4096):\n"
            "    sys.stdout.buffer.write(chunk)\n")
    result = warm.case(code, stdin=data, max_output_bytes=4 << 20)
    assert result["outcome"] == "ok", result
    assert result["stdout"] == data


def test_binary_stdin_through_json_surrogates(warm: Warm) -> None:
    """JSON strings carry bytes that are not UTF-8 as lone surrogates (U+DC80..U+DCFF)."""
    code = "import sys\nprint(sys.stdin.buffer.read().hex())\n"
    body = json.dumps({"code": code, "stdin": "\udcff\udc80\x00ab\udcc3"})  # ASCII escapes
    response = warm.client.post("/v1/run", content=body,
                                headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["stdout"] == "ff8000616 2c3\n".replace(" ", "")
    warm.check_after(response.json())


@pytest.mark.parametrize("code", [
    "import sys\nprint(repr(sys.stdin.read()), repr(sys.stdin.read()))\n",
    "import os\nprint(os.read(0, 10), os.read(0, 10))\n",
])
def test_no_stdin_is_an_immediate_eof(warm: Warm, code: str) -> None:
    result = warm.case(code, timeout=5)
    assert result["outcome"] == "ok", result


def test_input_without_stdin_raises_eof(warm: Warm) -> None:
    result = warm.case("input('prompt> ')\n", timeout=5)
    assert result["outcome"] == "error"
    assert "EOFError" in result["stderr"]


@pytest.mark.parametrize("code", [
    "import os, select\nr, w = os.pipe()\nselect.select([r], [], [])\n",
    "import sys, time\nsys.stdin.read()\nwhile True:\n    time.sleep(1)\n",
    "import os\nos.open('/dev/tty', os.O_RDONLY)\n",
    "import threading\nthreading.Event().wait()\n",
])
def test_code_that_waits_forever_times_out(warm: Warm, code: str) -> None:
    result = warm.case(code, timeout=1, stdin="some input")
    if "/dev/tty" in code:  # no terminal: it fails at once instead
        assert result["outcome"] == "error"
    else:
        assert result["outcome"] == "timeout", result


def test_stdin_read_by_a_grandchild_after_the_parent_exits(warm: Warm) -> None:
    code = ("import os, sys, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    sys.stdin.read()\n"
            "    time.sleep(3600)\n"
            "print('parent gone')\n")
    result = warm.case(code, stdin="x" * (1 << 20), timeout=5)
    assert (result["outcome"], result["stdout"]) == ("ok", "parent gone\n"), result
