"""Narrow checks of session limits and of the runner's reading of files to send back."""

import base64
import os
import time
from pathlib import Path
from types import ModuleType

import pytest

from service.jobspec import InvalidRequest, check_return_files
from service.models import SessionInfo, SessionRequest, SessionState
from service.sessions import SessionRefused, build_session_spec, refused, require_open
from service.settings import Settings
from service.worker.session_capacity import IDLE_SESSION_MIB, session_capacity
from tests.support import runner_module


@pytest.fixture(scope="module")
def runner() -> ModuleType:
    """The runner's file reading."""
    return runner_module("files")


@pytest.mark.parametrize(("pattern", "name", "matches"), [
    ("*.png", "a.png", True),
    ("*.png", "sub/a.png", False),
    ("*.png", ".hidden.png", False),
    (".*.png", ".hidden.png", True),
    ("**/*.png", "a.png", True),
    ("**/*.png", "x/y/z/a.png", True),
    ("**/*.png", "x/.git/a.png", False),
    ("out/**", "out/a/b.txt", True),
    ("out/**", "other/a.txt", False),
    ("**/**/*.csv", "a/b.csv", True),
    ("data/[ab].txt", "data/b.txt", True),
    ("data/[ab].txt", "data/c.txt", False),
])
def test_patterns(runner: ModuleType, pattern: str, name: str, matches: bool) -> None:
    parts = runner.collapse_stars(pattern.split("/"))
    assert runner.pattern_matches(parts, name.split("/")) is matches


def request(patterns: list[str], count: int = 10, size: int = 1 << 20) -> dict:
    return {"return_files": patterns, "max_return_files": count, "max_return_bytes": size}


def test_collect_reads_regular_files_only_and_never_through_a_link(runner: ModuleType,
                                                                   tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "a.txt").write_text("a")
    (work / "sub" / "b.txt").write_text("b")
    (work / "link.txt").symlink_to(outside / "secret.txt")
    (work / "linked").symlink_to(outside, target_is_directory=True)
    (work / "sub" / "up").symlink_to(outside, target_is_directory=True)
    os.mkfifo(work / "fifo.txt")
    found = runner.collect_files(str(work), request(["**/*.txt", "linked/*", "sub/up/*"]))
    assert found["files_truncated"] is False
    assert {n: base64.b64decode(v) for n, v in found["files"].items()} == {
        "a.txt": b"a", "sub/b.txt": b"b"}


def test_collect_caps_and_since(runner: ModuleType, tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}.txt").write_bytes(b"x" * 100)
    by_count = runner.collect_files(str(tmp_path), request(["*.txt"], count=3))
    assert sorted(by_count["files"]) == ["f0.txt", "f1.txt", "f2.txt"]
    assert by_count["files_truncated"] is True
    by_size = runner.collect_files(str(tmp_path), request(["*.txt"], size=250))
    assert sorted(by_size["files"]) == ["f0.txt", "f1.txt"] and by_size["files_truncated"]
    coarse = runner_module("config").CLOCK_REALTIME_COARSE  # files' own clock
    later = time.clock_gettime_ns(coarse) + 10**9
    assert runner.collect_files(str(tmp_path), request(["*.txt"]), since_ns=later)["files"] == {}


@pytest.mark.parametrize("pattern", ["../a", "/abs/*", "a//b", "./a", "a/./b", "", "a\\b",
                                     "x" * 256, "tab\there"])
def test_bad_return_patterns(pattern: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_return_files([pattern])
    assert raised.value.reason == "invalid_return_files"


def test_session_limits_are_bounded() -> None:
    settings = Settings()
    spec = build_session_spec(SessionRequest(), settings)
    assert (spec.timeout_s, spec.memory_mb, spec.idle_ttl_s) == (
        settings.default_timeout_s, settings.default_memory_mb, settings.default_session_idle_s)
    with pytest.raises(InvalidRequest):
        build_session_spec(SessionRequest(idle_ttl_s=settings.max_session_idle_s + 1), settings)
    with pytest.raises(InvalidRequest):
        build_session_spec(SessionRequest(memory_mb=settings.max_memory_mb + 1), settings)


def info(state: SessionState) -> SessionInfo:
    return SessionInfo(id="s", state=state, timeout=1, memory_mb=1, idle_ttl_s=1, created_at=0,
                       last_used_at=0, expires_at=None, calls=0, message="why")


@pytest.mark.parametrize(("state", "status", "reason"), [
    (SessionState.LOST, 410, "session_lost"),
    (SessionState.CLOSED, 410, "session_closed"),
    (SessionState.EXPIRED, 410, "session_expired"),
    (SessionState.OPENING, 409, "session_busy"),
])
def test_calls_to_a_session_not_open_are_refused(state: SessionState, status: int,
                                                 reason: str) -> None:
    with pytest.raises(SessionRefused) as raised:
        require_open(info(state))
    assert (raised.value.status, raised.value.reason) == (status, reason)
    require_open(info(SessionState.OPEN))


def test_worker_refusals_map_to_statuses() -> None:
    assert refused({"error": "session_limit", "message": "m"}).status == 429
    assert refused({"error": "session_busy", "message": "m"}).status == 409
    assert refused({"error": "something_new", "message": "m"}).status == 503


def test_a_workers_session_capacity_is_set_or_follows_its_host_memory() -> None:
    gib = 2**30
    assert session_capacity(Settings(max_sessions_per_worker=8), 24 * gib) == 8
    assert session_capacity(Settings(), 24 * gib) == 12 * 1024 // IDLE_SESSION_MIB
    assert session_capacity(Settings(session_memory_share=0.25), 24 * gib) == \
        6 * 1024 // IDLE_SESSION_MIB
    assert session_capacity(Settings(), IDLE_SESSION_MIB * 2**20) == 0
