"""The runner (standard library only, its own copy of the wire format) against the worker's
definitions in service/runner_protocol.py, over the real transport, in a real container."""

import asyncio
import json
import subprocess
import time
from dataclasses import dataclass

from service import runner_protocol as rp
from service.jobspec import JobSpec
from service.models import Language
from service.settings import Settings
from service.worker.docker_engine import DockerEngine, Owner, container_spec
from service.worker.runner_channel import RunnerChannel


def spec(code: str, **changes: object) -> JobSpec:
    fields = {"language": Language.PYTHON, "code": code, "stdin_b64": None, "files_b64": {},
              "timeout_s": 5, "memory_mb": 256, "max_output_bytes": 1 << 16,
              "max_file_bytes": 1 << 20, "fresh_interpreter": False, **changes}
    return JobSpec(**fields)


RETURN_FILES = {"max_return_files": 4, "max_return_bytes": 1 << 20}
# The frame after which the runner waits for the next request, by request.
LAST = {rp.OP_RUN: rp.OP_READY, rp.OP_SESSION: rp.OP_SESSION_READY, rp.OP_CELL: rp.OP_RESULT,
        rp.OP_CANCEL: rp.OP_READY}


@dataclass(frozen=True)
class Unanswered:
    """A request whose answer comes with the next request's (a run the next one cancels),
    sent `wait_s` before it."""

    message: dict
    wait_s: float


async def exchange(engine: DockerEngine,
                   messages: list[dict | Unanswered]) -> tuple[dict, list[list[dict]]]:
    """The runner's hello, and its frames in answer to each message."""
    owner = Owner(f"contract-{time.time_ns()}", "contract", "test", 0)
    settings = engine.settings
    container_id, sock, multiplexed = await asyncio.to_thread(
        engine.start, container_spec(settings, settings.image_for("python"), owner, 256,
                                     socket_dir=engine.new_socket_dir(owner.deployment)))
    channel = await RunnerChannel.open(sock, multiplexed)
    try:
        hello = await channel.receive()
        replies = []
        for message in messages:
            if isinstance(message, Unanswered):
                await channel.send(message.message)
                await asyncio.sleep(message.wait_s)
                continue
            await channel.send(message)
            frames = [await asyncio.wait_for(channel.receive(), 60)]
            while frames[-1]["op"] not in (LAST[message["op"]], rp.OP_READY):
                frames.append(await asyncio.wait_for(channel.receive(), 60))
            replies.append(frames)
        return hello, replies
    finally:
        await channel.close()
        await asyncio.to_thread(engine.remove, container_id)


def converse(messages: list[dict | Unanswered]) -> tuple[dict, list[list[dict]]]:
    engine = DockerEngine(Settings())
    try:
        return asyncio.run(exchange(engine, messages))
    finally:
        engine.close()


def test_runner_speaks_the_workers_protocol(docker_engine: None) -> None:
    hello, replies = converse([
        rp.run_message("a", spec("print('x')")),
        rp.run_message("b", spec("import sys; print(sys.argv[1:])", argv=["1"])),
        rp.run_message("c", spec("open('out.txt', 'w').write('y'); print('z', flush=True)",
                                 stream=True, **RETURN_FILES, return_files=["out.txt"])),
    ])
    assert hello == {"op": rp.OP_READY, "protocol": rp.PROTOCOL_VERSION, "pid": hello["pid"]}
    (first, ready), (second, _), (*pieces, third, _) = replies
    assert first["op"] == rp.OP_RESULT
    assert set(first) == rp.RESULT_KEYS
    assert (first["id"], first["stdout"], first["exit_code"]) == ("a", "x\n", 0)
    assert ready["op"] == rp.OP_READY
    assert second["stdout"] == "['1']\n"
    assert set(third) == rp.RESULT_KEYS | rp.FILES_KEYS
    assert (third["files"], third["files_truncated"]) == ({"out.txt": "eQ=="}, False)
    assert pieces == [{"op": rp.OP_OUTPUT, "id": "c", "stream": "stdout", "data": "ego="}]


def test_a_cancel_ends_the_run_and_the_runner_stays(docker_engine: None) -> None:
    _, replies = converse([
        Unanswered(rp.run_message("loop", spec("while True: pass", timeout_s=30)), 1.0),
        rp.cancel_message("loop"),
        rp.run_message("after", spec("print('still here')")),
    ])
    (cancelled, ready), (after, _) = replies
    assert set(cancelled) == rp.RESULT_KEYS
    assert (cancelled["id"], cancelled["cancelled"], cancelled["timed_out"]) == ("loop", True, False)
    assert ready["op"] == rp.OP_READY
    assert (after["cancelled"], after["stdout"]) == (False, "still here\n")


def test_a_session_speaks_the_workers_protocol(docker_engine: None) -> None:
    """A `session` request turns the waiting child into the session's; each `cell` is
    answered by a result that says whether the session's process lives on."""
    _, replies = converse([
        rp.session_message("s", 1 << 20),
        rp.cell_message("c1", spec("x = 41"), 1.0),
        rp.cell_message("c2", spec("print(x + 1, flush=True); open('f', 'w').write('y')",
                                   stream=True, **RETURN_FILES, return_files=["f"]), 1.0),
    ])
    (ready,), (first,), (*pieces, second) = replies
    assert ready == {"op": rp.OP_SESSION_READY, "id": "s"}
    cell_keys = rp.RESULT_KEYS - {"cancelled"} | rp.CELL_KEYS  # a cell has no `cancel`
    assert set(first) == cell_keys
    assert (first["op"], first["id"], first["session_ended"]) == (rp.OP_RESULT, "c1", False)
    assert set(second) == cell_keys | rp.FILES_KEYS
    assert (second["stdout"], second["files"]) == ("42\n", {"f": "eQ=="})
    assert pieces == [{"op": rp.OP_OUTPUT, "id": "c2", "stream": "stdout", "data": "NDIK"}]


def test_the_result_says_which_time_limit_ended_the_run(docker_engine: None) -> None:
    """A CPU loop past its cpu_timeout, a sleep past its timeout (a cpu_timeout does not end
    it: it uses no CPU), a loop that ran its course: CPU time and which limit, as the worker
    reads them."""
    loop = "while True: pass"
    _, replies = converse([
        rp.run_message("cpu", spec(loop, timeout_s=30, cpu_timeout_s=0.5,
                                   cpu_wait_allowance_s=10)),
        rp.run_message("sleep", spec("import time; time.sleep(60)", timeout_s=1,
                                     cpu_timeout_s=0.5)),
        rp.run_message("done", spec("sum(range(3 * 10**6))")),
    ])
    cpu, sleep, done = (frames[0] for frames in replies)
    assert all(set(r) == rp.RESULT_KEYS for r in (cpu, sleep, done))
    assert (cpu["timed_out"], cpu["time_limit"]) == (True, rp.LIMIT_CPU)
    assert cpu["cpu_ms"] >= 500
    assert (sleep["timed_out"], sleep["time_limit"]) == (True, rp.LIMIT_TIMEOUT)
    assert sleep["cpu_ms"] < 500
    assert (done["timed_out"], done["time_limit"]) == (False, None)
    assert done["cpu_ms"] > 0 and 0 <= done["cpu_wait_ms"] <= done["run_ms"]


def test_an_unreadable_request_is_answered_with_the_reason_before_the_runner_exits(
        docker_engine: None) -> None:
    """Over the attached stdin (as under gVisor): a frame that is not JSON."""
    image = Settings().image_for("python")
    done = subprocess.run(["docker", "run", "-i", "--rm", "--network", "none", image],
                          input=rp.HEADER.pack(5) + b"hello", capture_output=True, timeout=120)
    assert done.returncode == 2
    assert b"runner cannot read its request: JSONDecodeError" in done.stderr
    frames, data = [], done.stdout
    while data:
        (size,) = rp.HEADER.unpack(data[:4])
        frames.append(json.loads(data[4:4 + size]))
        data = data[4 + size:]
    assert frames[0]["op"] == rp.OP_READY
    assert frames[-1]["op"] == "error"
    assert frames[-1]["error"].startswith("runner cannot read its request: JSONDecodeError")
