"""A bounded load: `print(i)` snippets, a fixed number in flight, spread over the API containers."""

import asyncio
import itertools
import time
from dataclasses import dataclass

import httpx

REQUEST_TIMEOUT_S = 120


@dataclass(frozen=True)
class Answer:
    index: int
    status: int
    body: dict
    done: float  # time.monotonic() when it arrived

    @property
    def correct(self) -> bool:
        return (self.status == 200 and self.body.get("outcome") == "ok"
                and self.body.get("stdout") == f"{self.index}\n")


class Load:
    """Keeps `in_flight` requests going until stop() or max_jobs, recording every answer."""

    def __init__(self, urls: list[str], key: str, in_flight: int, max_jobs: int):
        self.urls = urls
        self.key = key
        self.in_flight = in_flight
        self.max_jobs = max_jobs
        self.answers: list[Answer] = []
        self._next = itertools.count()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> list[Answer]:
        headers = {"authorization": f"Bearer {self.key}"}
        limits = httpx.Limits(max_connections=self.in_flight * 2)
        async with httpx.AsyncClient(headers=headers, timeout=REQUEST_TIMEOUT_S,
                                     limits=limits) as client:
            await asyncio.gather(*(self._sender(client) for _ in range(self.in_flight)))
        return sorted(self.answers, key=lambda a: a.index)

    async def _sender(self, client: httpx.AsyncClient) -> None:
        while not self._stopping.is_set():
            index = next(self._next)
            if index >= self.max_jobs:
                return
            url = self.urls[index % len(self.urls)]
            response = await client.post(f"{url}/v1/run", json={"code": f"print({index})"})
            self.answers.append(Answer(index, response.status_code, response.json(),
                                       time.monotonic()))

    async def until_answered(self, count: int, timeout: float) -> None:
        """Until `count` answers have arrived in all (bounded by timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.answers) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.answers)} of {count} answers arrived")
            await asyncio.sleep(0.05)


def rate(answers: list[Answer], start: float, end: float) -> float:
    """Answers per second that arrived between two instants."""
    arrived = sum(start <= a.done < end for a in answers)
    return arrived / (end - start) if end > start else 0.0
