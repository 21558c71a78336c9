"""CPU admission serves an interactive run before bulk runs that waited longer."""

import asyncio

from service.worker.admission import CpuAdmission


async def test_an_urgent_run_enters_before_bulk_runs_waiting_longer() -> None:
    admission = CpuAdmission(slots=1)
    order: list[str] = []
    release = asyncio.Event()

    async def run(name: str, urgent: bool) -> None:
        async with admission.admitted(urgent):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(run("running", False))
    await asyncio.sleep(0.05)
    waiting = [asyncio.create_task(run(f"bulk-{i}", False)) for i in range(3)]
    await asyncio.sleep(0.05)
    urgent = asyncio.create_task(run("interactive", True))
    await asyncio.sleep(0.05)
    assert order == ["running"]
    release.set()  # each run, once in, leaves at once: one slot, taken in turn
    await asyncio.wait_for(asyncio.gather(first, urgent, *waiting), 10)
    assert order[:2] == ["running", "interactive"]
