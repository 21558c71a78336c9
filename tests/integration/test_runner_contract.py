"""The runner (standard library only, its own copy of the wire format) against the worker's
definitions in service/runner_protocol.py, over the real transport, in a real container."""

import asyncio
import time

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


async def exchange(engine: DockerEngine, messages: list[dict]) -> tuple[dict, list[dict]]:
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
            await channel.send(message)
            replies.append(await channel.receive())
            replies.append(await channel.receive())  # ready again
        return hello, replies
    finally:
        await channel.close()
        await asyncio.to_thread(engine.remove, container_id)


def test_runner_speaks_the_workers_protocol(docker_engine: None) -> None:
    engine = DockerEngine(Settings())
    try:
        hello, replies = asyncio.run(exchange(engine, [
            rp.run_message("a", spec("print('x')")),
            rp.run_message("b", spec("import sys; print(sys.argv[1:])", argv=["1"])),
        ]))
    finally:
        engine.close()
    assert hello == {"op": rp.OP_READY, "protocol": rp.PROTOCOL_VERSION, "pid": hello["pid"]}
    first, ready, second, _ = replies
    assert first["op"] == rp.OP_RESULT
    assert set(first) == rp.RESULT_KEYS
    assert (first["id"], first["stdout"], first["exit_code"]) == ("a", "x\n", 0)
    assert ready["op"] == rp.OP_READY
    assert second["stdout"] == "['1']\n"


def test_the_result_says_which_time_limit_ended_the_run(docker_engine: None) -> None:
    """A CPU loop past its cpu_timeout, a sleep past its timeout (a cpu_timeout does not end
    it: it uses no CPU), a loop that ran its course: CPU time and which limit, as the worker
    reads them."""
    engine = DockerEngine(Settings())
    loop = "while True: pass"
    try:
        _, replies = asyncio.run(exchange(engine, [
            rp.run_message("cpu", spec(loop, timeout_s=30, cpu_timeout_s=0.5,
                                       cpu_wait_allowance_s=10)),
            rp.run_message("sleep", spec("import time; time.sleep(60)", timeout_s=1,
                                         cpu_timeout_s=0.5)),
            rp.run_message("done", spec("sum(range(3 * 10**6))")),
        ]))
    finally:
        engine.close()
    cpu, sleep, done = replies[0::2]
    assert all(set(r) == rp.RESULT_KEYS for r in (cpu, sleep, done))
    assert (cpu["timed_out"], cpu["time_limit"]) == (True, rp.LIMIT_CPU)
    assert cpu["cpu_ms"] >= 500
    assert (sleep["timed_out"], sleep["time_limit"]) == (True, rp.LIMIT_TIMEOUT)
    assert sleep["cpu_ms"] < 500
    assert (done["timed_out"], done["time_limit"]) == (False, None)
    assert done["cpu_ms"] > 0 and 0 <= done["cpu_wait_ms"] <= done["run_ms"]
