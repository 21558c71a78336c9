"""Three worker hosts and two API hosts sharing one Redis, each host a container on one Docker
network (each worker with its own sandbox pool on this machine's engine, through the socket).

Under steady load one worker is killed and another is cut off the network for a while: every
request is still answered exactly once with the right output (the dead and the silent worker's
jobs are reclaimed by the others), and all three hosts take work again afterwards.
"""

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from tests.multihost.cluster import Cluster, build_images
from tests.multihost.load import Load, rate

pytestmark = pytest.mark.slow

WORKERS = 3
APIS = 2
POOL_SIZE = 2
IN_FLIGHT = 12  # twice the sandboxes, so every worker always has work
MAX_JOBS = 20_000
PARTITION_S = 8
PHASE_TIMEOUT_S = 90
RECLAIM_LOG = "job reclaimed from a silent worker"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    build_images()
    cluster = Cluster({
        "SANDBOX_POOL_SIZE": str(POOL_SIZE),
        "SANDBOX_SESSION_WARM": "1",
        "SANDBOX_LANGUAGES": "python",
        "SANDBOX_PRELOAD": "",
        "SANDBOX_SCIENTIFIC_POOL_SIZE": "0",
        "SANDBOX_HEARTBEAT_S": "0.5",
        "SANDBOX_RECLAIM_IDLE_S": "2",
        "SANDBOX_LOG_LEVEL": "INFO",
    })
    try:
        cluster.start(workers=WORKERS, apis=APIS)
        cluster.wait_apis()
        cluster.wait_workers({w.name for w in cluster.workers}, min_idle=WORKERS * POOL_SIZE)
        yield cluster
    finally:
        cluster.save_logs()
        cluster.remove()


def executions(workers: list[dict[str, str]]) -> dict[str, int]:
    """Executions so far of each worker process, by worker id."""
    return {w["id"]: int(w["executions"]) for w in workers}


async def until_all_hosts_ran(cluster: Cluster, hosts: set[str], since: dict[str, int]) -> None:
    """Until a worker on each host has run jobs since the snapshot `since` (bounded)."""
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while True:
        workers = await asyncio.to_thread(cluster.live_workers)
        ran = {w["host"] for w in workers if int(w["executions"]) > since.get(w["id"], 0)}
        if hosts <= ran:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"hosts that ran jobs: {sorted(ran)}, expected {sorted(hosts)}")
        await asyncio.sleep(0.3)


def reclaims(cluster: Cluster) -> int:
    found = 0
    for worker in cluster.workers:
        for line in cluster.logs(worker).splitlines():
            if line.startswith("{") and json.loads(line).get("msg") == RECLAIM_LOG:
                found += 1
    return found


async def test_no_job_is_lost_when_workers_die_or_drop_off_the_network(cluster: Cluster) -> None:
    hosts = {w.name for w in cluster.workers}
    killed, partitioned = cluster.workers[0], cluster.workers[1]
    load = Load(cluster.api_urls, cluster.key, IN_FLIGHT, MAX_JOBS)
    start = executions(await asyncio.to_thread(cluster.live_workers))
    running = asyncio.create_task(load.run())
    try:
        t_start = time.monotonic()
        await until_all_hosts_ran(cluster, hosts, start)  # the load reaches every worker
        t_faults = time.monotonic()
        await asyncio.to_thread(killed.kill)  # SIGKILL, mid-job: nothing handed back
        await load.until_answered(len(load.answers) + 5 * IN_FLIGHT, PHASE_TIMEOUT_S)
        await asyncio.to_thread(cluster.disconnect, partitioned)
        await asyncio.sleep(PARTITION_S)
        await asyncio.to_thread(cluster.reconnect, partitioned)
        await asyncio.to_thread(killed.start)
        recovered = executions(await asyncio.to_thread(cluster.wait_workers, hosts, 0))
        t_recovered = time.monotonic()
        await until_all_hosts_ran(cluster, hosts, recovered)  # throughput is back on all three
        await load.until_answered(len(load.answers) + 10 * IN_FLIGHT, PHASE_TIMEOUT_S)
    finally:
        load.stop()
        answers = await running
    t_end = time.monotonic()

    print(f"\n{len(answers)} jobs; answers/s: steady {rate(answers, t_start, t_faults):.0f}, "
          f"during faults {rate(answers, t_faults, t_recovered):.0f}, "
          f"after recovery {rate(answers, t_recovered, t_end):.0f}")
    assert [a.index for a in answers] == list(range(len(answers))), "a request went unanswered"
    wrong = [(a.index, a.status, a.body) for a in answers if not a.correct]
    assert not wrong, wrong[:5]
    job_ids = [a.body["id"] for a in answers]
    assert len(set(job_ids)) == len(job_ids)
    assert cluster.dead_letters() == 0
    assert reclaims(cluster) > 0, "no job of the dead or the cut-off worker was reclaimed"
