"""CPU admission serves an interactive run before bulk runs, whether they wait or run."""

import asyncio

from service.worker.admission import CpuAdmission


async def test_an_urgent_run_enters_beside_busy_bulk_runs_and_before_waiting_ones() -> None:
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
    assert order == ["running", "interactive"]  # in beside the busy bulk run, ahead of the rest
    release.set()
    await asyncio.wait_for(asyncio.gather(first, urgent, *waiting), 10)
    assert sorted(order[2:]) == ["bulk-0", "bulk-1", "bulk-2"]


async def test_busy_urgent_runs_hold_back_urgent_and_bulk_runs_alike() -> None:
    admission = CpuAdmission(slots=1)
    release = asyncio.Event()
    entered: list[str] = []

    async def run(name: str, urgent: bool) -> None:
        async with admission.admitted(urgent):
            entered.append(name)
            await release.wait()

    first = asyncio.create_task(run("interactive", True))  # busy (never sampled idle)
    await asyncio.sleep(0.05)
    later = [asyncio.create_task(run("bulk", False)),
             asyncio.create_task(run("interactive-2", True))]
    await asyncio.sleep(0.3)
    assert entered == ["interactive"]
    release.set()
    await asyncio.wait_for(asyncio.gather(first, *later), 10)
    assert entered == ["interactive", "interactive-2", "bulk"]
