"""Reading a container's threads as the worker does, here on this test's own process."""

import os
import threading
import time
from pathlib import Path

from service.worker.cgroups import READ_SIZE, Cgroup, Layout, read_small


def test_read_small_reads_a_file_longer_than_one_read(tmp_path: Path) -> None:
    body = bytes(range(256)) * (3 * READ_SIZE // 256 + 1)
    (tmp_path / "f").write_bytes(body)
    assert read_small(str(tmp_path / "f")) == body
    assert read_small(str(tmp_path / "missing")) is None


def test_runnable_sums_the_listed_threads_and_sees_one_running(tmp_path: Path) -> None:
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: stop.wait(5))
    spinner.start()
    try:
        tids = [os.getpid(), spinner.native_id, 999_999_999]  # the last one is gone
        (tmp_path / "tasks").write_text("".join(f"{tid}\n" for tid in tids))
        cgroup = Cgroup(Layout(str(tmp_path / "tasks"), "", "", ""), "c")
        total, ready = cgroup.runnable()
        ours = sum(int(n) for tid in tids[:2]
                   for n in Path(f"/proc/{tid}/schedstat").read_text().split()[:2])
        assert 0 < total <= ours
        assert ready  # this thread, reading, is running
        (tmp_path / "tasks").write_text(f"{spinner.native_id}\n")
        # The other one waits on an event (once it has got there: it may be just starting).
        deadline = time.monotonic() + 5
        while cgroup.runnable()[1] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cgroup.runnable()[1] is False
    finally:
        stop.set()
        spinner.join()
    (tmp_path / "tasks").unlink()
    assert cgroup.runnable() == (0, False)  # the container is gone
