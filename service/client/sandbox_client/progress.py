"""Progress of a long call: items done of a total, handed to a callback or drawn as a tqdm bar."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Report = Callable[[int, int], None]  # (items done, total)
ProgressArg = Report | bool | None  # a callback, True for a tqdm bar, or nothing


class Tally:
    """Counts items as they end and reports the count; threads of one call share it."""

    def __init__(self, total: int, report: Report | None):
        self.total = total
        self.done = 0
        self._report = report
        self._lock = threading.Lock()

    def __call__(self, count: int = 1) -> None:
        if self._report is None or not count:
            return
        with self._lock:
            self.done += count
            self._report(self.done, self.total)


@contextmanager
def tally(progress: ProgressArg, total: int, unit: str) -> Iterator[Tally]:
    """A Tally for one call; with progress=True, a tqdm bar closed when the call ends."""
    if progress is True:
        bar = tqdm_bar(total, unit)
        try:
            yield Tally(total, lambda done, _: bar.update(done - bar.n))
        finally:
            bar.close()
    else:
        yield Tally(total, progress or None)


def tqdm_bar(total: int, unit: str) -> Any:
    try:
        from tqdm.auto import tqdm  # an optional dependency: imported only when a bar is asked
    except ImportError as exc:
        raise ImportError("progress=True draws a tqdm bar: pip install 'sandbox-client[progress]'"
                          ", or pass a callback progress(done, total)") from exc
    return tqdm(total=total, unit=unit)
