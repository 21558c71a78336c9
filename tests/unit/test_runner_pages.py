"""The runner's probe of the pages a kind of code writes (sandbox_runner/pages.py), on this
host's kernel, with code of the test's own (the probe runs only the warm-ups, never a caller's
code): the pages it finds are those the code wrote. tests/integration/test_templates.py checks a
child that wrote them ahead through the service."""

import builtins
import ctypes
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.support import runner_module


@pytest.fixture(scope="module")
def pages() -> ModuleType:
    return runner_module("pages")


@pytest.fixture
def buffer(pages: ModuleType) -> Iterator[bytearray]:
    """64 pages, present (so shared with a forked probe), reachable from the probe's code."""
    memory = bytearray(64 * pages.PAGE)
    for at in range(0, len(memory), pages.PAGE):
        memory[at] = 1
    builtins.probed_buffer = memory  # type: ignore[attr-defined]
    yield memory
    del builtins.probed_buffer  # type: ignore[attr-defined]


def page_runs(runs: bytes) -> set[int]:
    """The page addresses of packed (start, length) runs."""
    found = set()
    for at in range(0, len(runs), 16):
        start, length = (int.from_bytes(runs[at + i:at + i + 8], "little") for i in (0, 8))
        found.update(range(start, start + length, 4096))
    return found


def test_a_probe_finds_the_pages_its_code_wrote(pages: ModuleType, buffer: bytearray) -> None:
    base = ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))
    offsets = [k * pages.PAGE + 100 for k in range(10, 20)]
    found = page_runs(pages.probe(f"for at in {offsets}:\n    probed_buffer[at] = 2\n"))
    wrote = {(base + at) // pages.PAGE * pages.PAGE for at in offsets}
    left = {(base + k * pages.PAGE + 100) // pages.PAGE * pages.PAGE for k in range(30, 40)}
    assert wrote <= found
    assert not left & found


def test_a_probe_that_fails_finds_nothing(pages: ModuleType) -> None:
    assert pages.probe("raise RuntimeError('no')") == b""

