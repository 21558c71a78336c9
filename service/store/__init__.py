"""The one home of Redis: nothing outside this package talks to it.

A Store, built once per process from the settings, owns the connection, the key names
(keys.py) and the Lua scripts, and gives each concern its module:

  jobs.py, job_scripts.py, fair_share.py  jobs: enqueue, claim by fair share, complete, cancel,
                     requeue, reclaim, dead letters
  workers.py         heartbeats, the live workers, when a silent worker counts as gone
  session_calls.py   the calls to the sessions a worker holds, on its own stream
  sessions.py        the session registry: each session's record and the caps
  session_claims.py  warm containers offered by workers and claimed as sessions open
  replies.py         the reply streams where workers answer an API process's waiting callers
  output.py          streamed output relayed from worker to API
  aliases.py         names other APIs' clients give sessions
  stats.py           the counters every process adds to and the dashboard reads
  errors.py          the error boundary every Redis call passes (translate_errors)
"""

from redis import asyncio as aioredis

from service.settings import Settings
from service.store.aliases import SessionAliases
from service.store.errors import QueueFull, QueueUnavailable, QuotaExceeded
from service.store.jobs import JobStore
from service.store.keys import Keys
from service.store.output import OutputStream
from service.store.replies import Replies, ReplyListener
from service.store.session_calls import SessionCalls
from service.store.session_claims import WarmClaims
from service.store.sessions import SessionRegistry
from service.store.stats import StatsStore
from service.store.workers import WorkerRegistry

__all__ = ["QueueFull", "QueueUnavailable", "QuotaExceeded", "Store"]

SOCKET_TIMEOUT_S = 30  # as long as any one Redis call may take


class Store:
    def __init__(self, redis: aioredis.Redis, settings: Settings):
        self._redis = redis
        self.keys = Keys(settings.key_prefix)
        self.jobs = JobStore(redis, self.keys, settings.result_ttl_s, settings.max_queue_depth)
        self.workers = WorkerRegistry(redis, self.keys, settings.heartbeat_s)
        self.session_calls = SessionCalls(redis, self.keys)
        self.sessions = SessionRegistry(redis, self.keys, settings.result_ttl_s)
        self.warm_claims = WarmClaims(redis, self.keys)
        self.replies = Replies(redis, self.keys)
        self.output = OutputStream(redis, self.keys)
        self.stats = StatsStore(redis, self.keys)

    @classmethod
    def connect(cls, settings: Settings) -> "Store":
        """An API process's or a worker's."""
        return cls(_waiting_client(settings), settings)

    @classmethod
    def for_counters(cls, settings: Settings) -> "Store":
        """A small one of its own for an API process's request counters, which are flushed
        beside the application's lifespan (service/api/request_metrics.py)."""
        return cls(aioredis.from_url(settings.redis_url, socket_timeout=5,
                                     socket_connect_timeout=2, max_connections=2), settings)

    def reply_listener(self, api_id: str) -> ReplyListener:
        """The reader of an API process's reply stream (one per process)."""
        return ReplyListener(self._redis, self.keys, api_id)

    def aliases(self, scheme: str, tenant: str) -> SessionAliases:
        """The names one tenant's clients of another API (scheme) give its sessions."""
        return SessionAliases(self._redis, self.keys, scheme, tenant)

    async def close(self) -> None:
        await self._redis.aclose()


def _waiting_client(settings: Settings) -> aioredis.Redis:
    """A client whose calls wait for a free connection (as long as a Redis call may take)
    rather than being told Redis is down when a burst has all SANDBOX_REDIS_CONNECTIONS busy
    (redis-py's own pool refuses past 100): an API process's burst of requests, or a worker's
    pool of runs all answered at once (a hundred callers hanging up together)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_connections,
        timeout=SOCKET_TIMEOUT_S, socket_keepalive=True, socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=2, health_check_interval=30)
    return aioredis.Redis.from_pool(pool)
