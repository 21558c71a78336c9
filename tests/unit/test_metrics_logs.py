"""Log lines are JSON objects; those logged while a job is handled carry its job_id."""

import asyncio
import io
import logging

import orjson

from service import logs


def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger(f"test-{id(stream)}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


async def test_each_job_task_tags_its_own_lines() -> None:
    logger, stream = capture()

    async def handle(job_id: str) -> None:
        logs.bind_job(job_id)
        await asyncio.sleep(0)  # interleave the two jobs
        logger.info("container replaced", extra={"container": "c1"})

    await asyncio.gather(handle("job-a"), handle("job-b"))
    logger.info("between jobs")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["msg"], e.get("job_id")) for e in lines] == [
        ("container replaced", "job-a"), ("container replaced", "job-b"), ("between jobs", None)]
    assert lines[0]["container"] == "c1"
    assert lines[0]["level"] == "info"


def test_level_comes_from_the_setting() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("warning")
        assert root.level == logging.WARNING
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
