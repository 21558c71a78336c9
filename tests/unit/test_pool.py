"""The container pool against a fake engine (tests/unit/fake_engine.py): warm floor, refill,
replacement after an abnormal end, reuse after a clean timeout, shutdown. The same behaviour on
real Docker: tests/integration/test_pool.py."""

import pytest

from service import runner_protocol as rp
from service.settings import Settings
from service.worker import pool as pool_module
from service.worker.docker_engine import EngineUnavailable, Owner
from service.worker.exchange import exchange
from service.worker.pool import ContainerPool
from service.worker.pools import ElasticPool
from tests.unit.fake_engine import FakeEngine, until

OWNER = Owner("unit", "worker-1", "host", 1)


def make_pool(engine: FakeEngine, **settings: object) -> ContainerPool:
    return ContainerPool(engine, Settings(**{"pool_size": 2, **settings}), OWNER, "sandbox-python")


async def run(pool: ContainerPool, code: str) -> tuple[str, bool]:
    """Lease a container, run `code` on its fake runner, release it as the executor does."""
    sandbox = await pool.lease(1.0)
    reusable = False
    try:
        answer = await exchange(sandbox.channel, {"op": rp.OP_RUN, "id": "j", "code": code}, 2.0)
        reusable = answer.reusable
    finally:
        pool.release(sandbox, reusable)
    return sandbox.container_id, reusable


async def test_the_pool_keeps_its_floor_warm_and_leases_only_ready_containers() -> None:
    engine = FakeEngine()
    pool = make_pool(engine)
    pool.start()
    await until(lambda: pool.idle == 2)
    assert (pool.live, engine.running) == (2, {"c0", "c1"})
    first, second = await pool.lease(1.0), await pool.lease(1.0)
    assert pool.idle == 0
    with pytest.raises(pool_module.PoolUnavailable):
        await pool.lease(0.1)
    pool.release(first, True)
    pool.release(second, True)
    await pool.close()


async def test_a_lease_prefers_a_container_whose_waiting_child_has_the_template() -> None:
    """Another template's waiting child is replaced by the runner before the run: a fork and a
    clean-up more on the run's path, paid only when no idle container has the one wanted."""
    engine = FakeEngine()
    pool = make_pool(engine)
    pool.start()
    await until(lambda: pool.idle == 2)
    for template in (rp.TEMPLATE_PRELOADED, rp.TEMPLATE_BARE):  # the first idle one, then the next
        sandbox = await pool.lease(1.0)
        sandbox.template = template
        answer = await exchange(sandbox.channel, {"op": rp.OP_RUN, "id": "j", "code": "ok"}, 2.0)
        pool.release(sandbox, answer.reusable)
        await until(lambda: pool.idle == 2)
    bare = await pool.lease(1.0, rp.TEMPLATE_BARE)
    assert bare.template == rp.TEMPLATE_BARE
    other = await pool.lease(1.0, rp.TEMPLATE_BARE)  # none left with it: the next idle one
    assert other.template == rp.TEMPLATE_PRELOADED
    pool.release(bare, True)
    pool.release(other, True)
    await pool.close()


async def test_an_elastic_pool_waits_for_a_container_cleaning_up_instead_of_starting_one() -> None:
    """A clean-up takes milliseconds, a start seconds: a lease that comes while the only container
    cleans up after its run is served by it; one that comes while it runs starts another."""
    engine = FakeEngine()
    pool = ElasticPool(engine, Settings(pool_size=2), OWNER, "sandbox-python", floor=1, ceiling=3)
    pool.start()
    await until(lambda: pool.idle == 1)
    container_id, _ = await run(pool, "slow_clean")
    assert pool.cleaning == 1
    busy = await pool.lease(2.0)
    assert (busy.container_id, engine.started) == (container_id, [container_id])
    other = await pool.lease(2.0)
    assert other.container_id != container_id and len(engine.started) == 2
    pool.release(busy, True)
    pool.release(other, True)
    await pool.close()


async def test_a_clean_timeout_keeps_its_container() -> None:
    """The runner killed the code at its limit and says ready: no container start is paid."""
    engine = FakeEngine()
    pool = make_pool(engine, pool_size=1)
    pool.start()
    await until(lambda: pool.idle == 1)
    container_id, reusable = await run(pool, "timeout")
    assert reusable
    await until(lambda: pool.idle == 1)
    assert (await pool.lease(1.0)).container_id == container_id
    assert (engine.started, engine.removed, pool.replaced) == (["c0"], [], 0)
    await pool.close()


@pytest.mark.parametrize("code", ["oom", "output_limit", "segfault", "dirty"])
async def test_an_abnormal_end_replaces_the_container(code: str) -> None:
    engine = FakeEngine()
    pool = make_pool(engine, pool_size=1)
    pool.start()
    await until(lambda: pool.idle == 1)
    container_id, _ = await run(pool, code)
    await until(lambda: pool.idle == 1 and container_id in engine.removed)
    assert (await pool.lease(1.0)).container_id != container_id
    assert (pool.replaced, engine.running) == (1, {"c1"})
    await pool.close()


async def test_a_container_is_replaced_after_its_last_execution() -> None:
    engine = FakeEngine()
    pool = make_pool(engine, pool_size=1, executions_per_container=2)
    pool.start()
    await until(lambda: pool.idle == 1)
    for _ in range(2):
        sandbox = await pool.lease(1.0)
        sandbox.executions += 1
        await exchange(sandbox.channel, {"op": rp.OP_RUN, "id": "j", "code": "ok"}, 2.0)
        pool.release(sandbox, True)
        await until(lambda: pool.idle == 1)
    assert (engine.started, engine.removed) == (["c0", "c1"], ["c0"])
    await pool.close()


async def test_the_pool_refills_once_the_engine_is_back() -> None:
    engine = FakeEngine()
    engine.failing = True
    pool = make_pool(engine)
    pool.start()
    await until(lambda: pool.last_error is not None)
    assert "the engine is away" in pool.last_error
    assert pool.starting == 2  # both still on their way: the heartbeat's `starting`
    with pytest.raises(pool_module.PoolUnavailable, match="the engine is away"):
        await pool.lease(0.1)
    engine.failing = False
    await until(lambda: pool.idle == 2)
    assert (pool.last_error, pool.starting) == (None, 0)
    await pool.close()


async def test_a_runner_that_died_while_idle_is_replaced_before_a_lease() -> None:
    engine = FakeEngine()
    pool = make_pool(engine, pool_size=1)
    pool.start()
    await until(lambda: pool.idle == 1)
    engine.kill("c0")
    await until(lambda: pool.idle == 0)
    assert (await pool.lease(2.0)).container_id == "c1"
    assert "c0" in engine.removed
    await pool.close()


async def test_a_runner_of_another_protocol_version_is_refused() -> None:
    engine = FakeEngine(protocol=rp.PROTOCOL_VERSION - 1)
    pool = make_pool(engine, pool_size=1)
    pool.start()
    await until(lambda: len(engine.removed) >= 1)
    assert "unexpected hello" in (pool.last_error or "")
    assert pool.idle == 0
    await pool.close()


async def test_shutdown_removes_every_container_leased_or_not() -> None:
    engine = FakeEngine()
    pool = make_pool(engine)
    pool.start()
    await until(lambda: pool.idle == 2)
    leased = await pool.lease(1.0)
    await pool.close()
    pool.release(leased, True)  # a job that ended during the shutdown
    await until(lambda: not engine.running)
    assert sorted(engine.removed) == ["c0", "c1"] and pool.live == 0


async def test_a_dedicated_container_stays_outside_the_pool() -> None:
    engine = FakeEngine()
    pool = make_pool(engine, pool_size=1)
    pool.start()
    await until(lambda: pool.idle == 1)
    kept = await pool.start_dedicated(256, {"sandbox.session": ""})
    assert (pool.live, pool.idle, kept.memory_mb) == (1, 1, 256)
    await pool.discard(kept)
    assert kept.container_id in engine.removed
    engine.failing = True
    with pytest.raises(EngineUnavailable):
        await pool.start_dedicated(256, {})
    await pool.close()
