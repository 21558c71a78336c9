"""POST /v1/run through HTTP → Redis → worker → container and back."""

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support import Service, run, sandbox_uid_processes


def test_print(client: httpx.Client) -> None:
    result = run(client, "print(6*7)")
    assert result["outcome"] == "ok"
    assert result["stdout"] == "42\n"
    assert result["stderr"] == ""
    assert result["exit_code"] == 0
    assert result["signal"] is None
    assert set(result["timing"]) == {"queue_ms", "run_ms", "cpu_ms", "cpu_wait_ms", "total_ms"}
    assert result["timing"]["total_ms"] >= result["timing"]["run_ms"] > 0


def test_stdin(client: httpx.Client) -> None:
    code = "import sys\nfor line in sys.stdin: print(line.strip()[::-1])"
    result = run(client, code, stdin="abc\nxyz\n")
    assert result["stdout"] == "cba\nzyx\n"


def test_no_stdin_reads_eof(client: httpx.Client) -> None:
    result = run(client, "import sys; print(repr(sys.stdin.read()))")
    assert result["stdout"] == "''\n"


def test_files_in(client: httpx.Client) -> None:
    blob = bytes(range(256))
    files = {"data.txt": "hello file", "sub/dir/b.bin": {"base64": base64.b64encode(blob).decode()}}
    code = ("print(open('data.txt').read()); "
            "print(open('sub/dir/b.bin','rb').read() == bytes(range(256)))")
    result = run(client, code, files=files)
    assert result["outcome"] == "ok", result
    assert result["stdout"] == "hello file\nTrue\n"


def test_uncaught_exception(client: httpx.Client) -> None:
    result = run(client, "def f():\n    raise ValueError('boom')\nf()")
    assert result["outcome"] == "error"
    assert result["exit_code"] == 1
    assert "Traceback (most recent call last)" in result["stderr"]
    assert "ValueError: boom" in result["stderr"]
    assert "/opt/runner/" not in result["stderr"]


def test_syntax_error(client: httpx.Client) -> None:
    result = run(client, "print(1")
    assert result["outcome"] == "error"
    assert "SyntaxError" in result["stderr"]


def test_exit_codes(client: httpx.Client) -> None:
    cases = {
        "import sys; sys.exit(3)": (3, "error", ""),
        "import os; os._exit(7)": (7, "error", ""),
        "import sys; sys.exit('bad thing')": (1, "error", "bad thing\n"),
        "import sys; sys.exit(0)": (0, "ok", ""),
        "exit()": (0, "ok", ""),
    }
    for code, (exit_code, outcome, stderr) in cases.items():
        result = run(client, code)
        assert (result["exit_code"], result["outcome"], result["stderr"]) == (
            exit_code, outcome, stderr), code


def test_killed_by_a_signal(client: httpx.Client) -> None:
    for number, name in [(9, "SIGKILL"), (15, "SIGTERM"), (40, "SIGRTMIN+6")]:
        result = run(client, f"import os; os.kill(os.getpid(), {number})")
        assert (result["outcome"], result["signal"], result["exit_code"]) == (
            "killed", number, None), result
        assert result["message"] == f"killed by {name}"


def test_fresh_interpreter(client: httpx.Client) -> None:
    code = "import sys; print(sys.argv[0], __name__, 'numpy' in sys.modules)"
    result = run(client, code, fresh_interpreter=True)
    assert result["outcome"] == "ok", result
    assert result["stdout"] == "main.py __main__ False\n"


PROCESS_STATE = ("import json, os, signal, sys\n"
                 "print(json.dumps([dict(os.environ), os.getcwd(), sys.argv, sys.path[0],\n"
                 "                  os.getuid(), sys.stdout.encoding, type(__builtins__).__name__,\n"
                 "                  signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN,\n"
                 "                  signal.getsignal(signal.SIGINT) is signal.default_int_handler]))\n")


def test_the_codes_process_state(client: httpx.Client) -> None:
    """The same environment, working directory, argv, import path and builtins whether the code
    runs in the forked interpreter or a fresh one; nothing of the runner's own environment."""
    forked = json.loads(run(client, PROCESS_STATE)["stdout"])
    fresh = json.loads(run(client, PROCESS_STATE, fresh_interpreter=True)["stdout"])
    env, cwd, argv, path0, uid, encoding, builtins, *signals = forked
    assert (env["HOME"], env["TMPDIR"], env["LANG"]) == ("/tmp/work", "/tmp", "C.UTF-8")
    assert not [k for k in env if k.startswith("SANDBOX_")]
    assert (cwd, argv, path0, uid, encoding, builtins, signals) == (
        "/tmp/work", ["/tmp/work/main.py"], "/tmp/work", 10001, "utf-8", "module", [True, True])
    assert fresh[0] == env
    assert fresh[1:] == [cwd, ["main.py"], path0, uid, encoding, builtins, *signals]


def test_what_cpython_does_at_exit(client: httpx.Client) -> None:
    """Files left open are flushed, and a write to a closed pipe raises, in both modes."""
    code = ("import os\n"
            "log = open('log.txt', 'w'); log.write('kept')\n"
            "write = open(1, 'w', closefd=False).write; write('fast output')\n"
            "r, w = os.pipe(); os.close(r)\n"
            "try:\n"
            "    os.write(w, b'x')\n"
            "except BrokenPipeError:\n"
            "    print('broken pipe raised', flush=True)\n")
    for fresh in (False, True):
        result = run(client, code, fresh_interpreter=fresh, return_files=["log.txt"])
        assert result["outcome"] == "ok", result
        assert sorted(result["stdout"].splitlines()) == ["broken pipe raised", "fast output"]
        assert base64.b64decode(result["files"]["log.txt"]["base64"]) == b"kept"


def test_threads_and_atexit_at_the_end_as_cpython(client: httpx.Client) -> None:
    """Non-daemon threads are joined before atexit handlers run, as at CPython's own exit (the
    forked interpreter does it only if the code imported threading, as CPython does)."""
    code = ("import atexit, threading, time\n"
            "atexit.register(print, 'atexit')\n"
            "def late():\n"
            "    time.sleep(0.2)\n"
            "    print('thread', flush=True)\n"
            "threading.Thread(target=late).start()\n"
            "print('main', flush=True)\n")
    for fresh in (False, True):
        result = run(client, code, fresh_interpreter=fresh)
        assert (result["outcome"], result["stdout"]) == ("ok", "main\nthread\natexit\n"), result


def test_timeout_kills_everything(client: httpx.Client, service: Service) -> None:
    code = ("import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    while True: time.sleep(1)\n"
            "while True: pass\n")
    started = time.monotonic()
    result = run(client, code, timeout=1)
    assert result["outcome"] == "timeout"
    assert result["signal"] == 9
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 10
    while sandbox_uid_processes(service.prefix) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sandbox_uid_processes(service.prefix) == []
    assert run(client, "print('after')")["stdout"] == "after\n"


def test_memory_bomb(client: httpx.Client) -> None:
    code = "a = []\nwhile True:\n    a.append(b'x' * (32 << 20))\n"
    result = run(client, code, memory_mb=128)
    assert result["outcome"] == "memory_limit", result
    assert run(client, "print('after')")["stdout"] == "after\n"


def test_huge_single_allocation(client: httpx.Client) -> None:
    result = run(client, "x = bytearray(50 << 30)", memory_mb=128)
    assert result["outcome"] == "memory_limit", result


def test_endless_output(client: httpx.Client) -> None:
    result = run(client, "while True: print('y' * 999)", max_output_bytes=10_000)
    assert result["outcome"] == "output_limit"
    assert result["stdout_truncated"] is True
    assert result["stderr_truncated"] is False
    assert len(result["stdout"]) == 10_000
    assert result["stdout"] == (("y" * 999 + "\n") * 11)[:10_000]


def test_endless_line_without_newline(client: httpx.Client) -> None:
    code = "import sys\nwhile True: sys.stdout.write('z' * 4096)"
    result = run(client, code, max_output_bytes=50_000)
    assert result["outcome"] == "output_limit"
    assert result["stdout"] == "z" * 50_000


def test_invalid_utf8_output(client: httpx.Client) -> None:
    code = "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe end\\n'); sys.stderr.buffer.write(b'\\x80')"
    result = run(client, code)
    assert result["outcome"] == "ok"
    assert result["stdout"] == "ok \ufffd\ufffd end\n"
    assert result["stderr"] == "\ufffd"


def test_parallel_answers_match(client: httpx.Client) -> None:
    def one(i: int) -> tuple[int, dict]:
        code = f"import sys; print({i}, sys.stdin.read())"
        return i, run(client, code, stdin=f"token-{i}")

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    for i, result in results:
        assert result["outcome"] == "ok"
        assert result["stdout"] == f"{i} token-{i}\n"
    assert len({r["id"] for _, r in results}) == 50


def test_random_state_differs_between_runs(client: httpx.Client) -> None:
    code = "import random, numpy; print(random.random(), numpy.random.random())"
    outputs = {run(client, code)["stdout"] for _ in range(6)}
    assert len(outputs) == 6


def test_args(client: httpx.Client) -> None:
    code = "import sys; print(sys.argv[1:])"
    assert run(client, code, args=["a", "b c"])["stdout"] == "['a', 'b c']\n"
    assert run(client, code, args=["x"], fresh_interpreter=True)["stdout"] == "['x']\n"
