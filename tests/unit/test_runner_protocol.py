"""The worker's copy of the wire format (service/runner_protocol.py) against the runner's own
definitions, read from the runner's modules (standard library only, importable here as they
are). tests/integration/test_runner_contract.py checks the messages of the real runner."""

from pathlib import Path
from types import ModuleType

import pytest

from service import runner_protocol as rp
from service.jobspec import ABSOLUTE_ROOTS
from service.worker.outcome import TIME_LIMITS
from tests.support import runner_module


@pytest.fixture(scope="module")
def runner() -> dict[str, ModuleType]:
    return {name: runner_module(name) for name in ("frames", "clock", "config")}


def test_both_sides_speak_the_same_protocol_version(runner: dict[str, ModuleType]) -> None:
    assert rp.PROTOCOL_VERSION == runner["frames"].PROTOCOL_VERSION


def test_frames_read_the_same_on_both_sides(runner: dict[str, ModuleType],
                                            tmp_path: Path) -> None:
    frames = runner["frames"]
    assert rp.HEADER.format == frames.FRAME.format and rp.HEADER.size == 4
    message = {"op": rp.OP_RUN, "id": "a", "code": "print('é')", "files": {}, "n": 1.5}
    path = tmp_path / "frames"
    path.write_bytes(rp.encode_frame(message) + frames.encode_frame(message))
    with path.open("rb") as f:
        assert frames.read_frame(f.fileno()) == message  # the worker's frame, read by the runner
        assert frames.read_frame(f.fileno()) == message  # and the runner's own
    (size,) = rp.HEADER.unpack(frames.encode_frame(message)[:4])
    assert size == len(frames.encode_frame(message)) - rp.HEADER.size


def test_the_time_limits_are_named_alike(runner: dict[str, ModuleType]) -> None:
    clock = runner["clock"]
    assert (rp.LIMIT_TIMEOUT, rp.LIMIT_WALL, rp.LIMIT_CPU) == (
        clock.TIMEOUT, clock.WALL_LIMIT, clock.CPU_TIMEOUT)
    assert set(TIME_LIMITS) == {rp.LIMIT_TIMEOUT, rp.LIMIT_WALL, rp.LIMIT_CPU}


def test_templates_and_absolute_return_roots_are_named_alike(
        runner: dict[str, ModuleType]) -> None:
    """An unknown template name would silently fork from the preloaded template."""
    config = runner["config"]
    assert (rp.TEMPLATE_BARE, rp.TEMPLATE_PRELOADED) == (config.BARE, config.PRELOADED)
    assert tuple(root.rstrip("/") for root in ABSOLUTE_ROOTS) == config.ABSOLUTE_ROOTS
