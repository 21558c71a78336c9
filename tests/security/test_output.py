"""Odd output: every stream comes back as a valid string, nothing lost below the cap."""

import pytest

from tests.security.probe import Warm


@pytest.mark.parametrize("fresh", [False, True])
def test_bytes_that_are_not_utf8(warm: Warm, fresh: bool) -> None:
    code = ("import sys\n"
            "sys.stdout.buffer.write(b'a\\xc3(b\\xed\\xa0\\x80c\\xf0\\x28\\x8c\\xbcd\\xc0\\xafe\\n')\n"
            "sys.stderr.buffer.write(b'\\xfe\\xff tail')\n")
    result = warm.case(code, fresh_interpreter=fresh)
    assert result["outcome"] == "ok"
    out = result["stdout"]
    assert out.startswith("a\ufffd(b") and out.endswith("e\n") and "c" in out and "d" in out
    assert result["stderr"] == "\ufffd\ufffd tail"
    out.encode("utf-8")  # a valid string: no lone surrogates


def test_lone_surrogates_printed_by_the_code(warm: Warm) -> None:
    """An escaped byte goes out as that byte (then replaced); an unpaired surrogate fails as it
    would in CPython, and its traceback is still a valid string."""
    result = warm.case("print('x\\udcffy')\n")
    assert (result["outcome"], result["stdout"]) == ("ok", "x\ufffdy\n")
    result = warm.case("print('x\\ud800y')\n")
    assert result["outcome"] == "error"
    assert "UnicodeEncodeError" in result["stderr"]
    result["stderr"].encode("utf-8")


def test_nul_bytes_and_control_characters_are_kept(warm: Warm) -> None:
    code = ("import sys\n"
            "sys.stdout.write('a\\0b\\0\\0c\\r\\n\\x07\\x08\\x1b[31mred\\x1b[0m\\x1b]0;title\\x07\\n')\n"
            "sys.stderr.write('\\0err\\x1b[2J')\n")
    result = warm.case(code)
    assert result["stdout"] == "a\0b\0\0c\r\n\x07\x08\x1b[31mred\x1b[0m\x1b]0;title\x07\n"
    assert result["stderr"] == "\0err\x1b[2J"


def test_multibyte_characters_split_across_writes_and_reads(warm: Warm) -> None:
    """Byte by byte with pauses, and straddling the runner's 64 KiB read size."""
    code = ("import os, time\n"
            "for ch in 'é€😀':\n"
            "    for b in ch.encode():\n"
            "        os.write(1, bytes([b]))\n"
            "        time.sleep(0.01)\n"
            "os.write(1, b'\\n')\n"
            "for size in (65535, 65534, 65533):\n"
            "    os.write(1, b'a' * size + '😀'.encode() + b'\\n')\n")
    result = warm.case(code)
    lines = result["stdout"].split("\n")
    assert lines[0] == "é€😀"
    assert lines[1:4] == ["a" * size + "😀" for size in (65535, 65534, 65533)]
    assert "\ufffd" not in result["stdout"]


def test_nothing_lost_below_the_cap(warm: Warm) -> None:
    text = "".join(chr(0x4E00 + i % 500) for i in range(20_000))  # 3 bytes each
    code = f"import sys\nsys.stdout.write({text!r})\nsys.stderr.write('é' * 30000)\n"
    result = warm.case(code, max_output_bytes=60_000)
    assert result["outcome"] == "ok", result
    assert (result["stdout"], result["stderr"]) == (text, "é" * 30000)
    assert not result["stdout_truncated"] and not result["stderr_truncated"]


def test_output_exactly_at_the_cap_is_not_cut(warm: Warm) -> None:
    result = warm.case("print('x' * 999)", max_output_bytes=1000)
    assert (result["outcome"], result["stdout_truncated"]) == ("ok", False)
    result = warm.case("print('x' * 1000)", max_output_bytes=1000)
    assert (result["outcome"], result["stdout_truncated"]) == ("output_limit", True)
    assert result["stdout"] == "x" * 1000


def test_a_character_cut_by_the_cap_becomes_one_replacement(warm: Warm) -> None:
    result = warm.case("print('€' * 100)", max_output_bytes=10)  # 3 bytes each: 3 + 1/3
    assert result["outcome"] == "output_limit"
    assert result["stdout"] == "€€€\ufffd"


def test_many_tiny_unbuffered_writes(warm: Warm) -> None:
    code = "import os\nfor i in range(20000):\n    os.write(1, b'.')\n"
    result = warm.case(code)
    assert result["stdout"] == "." * 20000


def test_output_that_escapes_to_six_times_its_size_comes_back_whole(warm: Warm) -> None:
    """NULs at the cap on both streams with a small memory limit: the JSON answer is six times
    the output, and the runner has the room to send it (the code has ended by then)."""
    size = 8 << 20
    code = f"import os\nos.write(1, b'\\0' * {size})\nos.write(2, b'\\xff' * {size})\n"
    result = warm.case(code, max_output_bytes=size, memory_mb=16)
    assert result["outcome"] == "ok", result["message"]
    assert result["stdout"] == "\0" * size
    assert result["stderr"] == "\ufffd" * size
