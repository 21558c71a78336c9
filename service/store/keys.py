"""Every Redis key, stream, group and channel name. Nothing else spells a key."""

from dataclasses import dataclass

WORKER_GROUP = "workers"


@dataclass(frozen=True)
class Keys:
    prefix: str

    def jobs(self, lane: str, tenant: str) -> str:
        """One tenant's job stream in one lane (interactive or bulk), read by the consumer group
        WORKER_GROUP, whose pending entries are the tenant's running jobs of that lane;
        fair_share.py's LANES gives the order workers take the lanes in."""
        return f"{self.lane_prefix(lane)}{tenant}"

    def lane_prefix(self, lane: str) -> str:
        """What the name of every tenant's stream in a lane starts with (the scripts that count
        a lane or claim from it name the streams themselves)."""
        return f"{self.prefix}:jobs:{lane}:"

    @property
    def queues(self) -> str:
        """Hash: tenant → "weight max_running" (0: no cap), of every tenant that has queued a
        job: whose job streams the workers serve."""
        return f"{self.prefix}:queues"

    @property
    def fair_pass(self) -> str:
        """Hash: tenant → its virtual time in the fair share (and the deployment's own)."""
        return f"{self.prefix}:fair-pass"

    @property
    def jobs_queued(self) -> str:
        """Stream of one entry, replaced as jobs are queued: idle workers wait on it."""
        return f"{self.prefix}:jobs-queued"

    def cancels(self, worker_id: str) -> str:
        """Stream of ids of jobs running on one worker that were cancelled: it kills them."""
        return f"{self.prefix}:cancels:{worker_id}"

    @property
    def dead_letters(self) -> str:
        """Jobs delivered too often, kept for inspection."""
        return f"{self.prefix}:dead"

    @property
    def workers(self) -> str:
        """Sorted set: worker id → time of its last heartbeat (ms)."""
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        """Hash: one worker's self-description, expiring with its heartbeats."""
        return f"{self.prefix}:worker:{worker_id}"

    def job(self, job_id: str) -> str:
        """Hash: a job's state and, when done, its result."""
        return f"{self.prefix}:job:{job_id}"

    def tenant_jobs(self, tenant: str) -> str:
        """Set: ids of one tenant's jobs waiting or running (its max_queued counts these)."""
        return f"{self.prefix}:tenant-jobs:{tenant}"

    def tenant_sessions(self, tenant: str) -> str:
        """Sorted set: one tenant's open session ids → expiry (ms), as `sessions` (its cap)."""
        return f"{self.prefix}:tenant-sessions:{tenant}"

    def replies(self, api_id: str) -> str:
        """Stream of results for the callers waiting on one API process."""
        return f"{self.prefix}:replies:{api_id}"

    @property
    def metrics(self) -> str:
        """Hash: cluster-wide counters and histogram buckets, summed from every process."""
        return f"{self.prefix}:metrics"

    def throughput(self, resolution_s: int, bucket: int) -> str:
        """Hash: outcome → jobs answered in one time bucket (expires after its window)."""
        return f"{self.prefix}:throughput:{resolution_s}:{bucket}"

    def tenant_throughput(self, bucket: int) -> str:
        """Hash: tenant → jobs answered in one 5 s bucket (expires after a minute)."""
        return f"{self.prefix}:tenant-throughput:{bucket}"

    @property
    def recent_latencies(self) -> str:
        """Capped list: timings of the latest jobs, for the dashboard's percentiles."""
        return f"{self.prefix}:recent:latencies"

    @property
    def recent_errors(self) -> str:
        """Capped list: the latest sandbox_error results, newest first."""
        return f"{self.prefix}:recent:errors"

    @property
    def sessions(self) -> str:
        """Sorted set: open session id → when it expires unless used (ms); the cluster-wide cap."""
        return f"{self.prefix}:sessions"

    def session(self, session_id: str) -> str:
        """Hash: one session's state, owner worker, limits and use."""
        return f"{self.prefix}:session:{session_id}"

    def session_alias(self, scheme: str, tenant: str, name: str) -> str:
        """String: the session a client of another API (scheme) of a tenant names `name`."""
        return f"{self.prefix}:session-alias:{scheme}:{tenant}:{name}"

    def session_alias_of(self, scheme: str, session_id: str) -> str:
        """String: the name a client of another API (scheme) gave a session."""
        return f"{self.prefix}:session-alias-of:{scheme}:{session_id}"

    def output(self, request_id: str) -> str:
        """Stream: a streamed request's output chunks, as produced (capped, expiring)."""
        return f"{self.prefix}:output:{request_id}"

    def session_warm(self, worker_id: str) -> str:
        """List: containers a worker keeps warm for sessions, each claimed by one opening."""
        return f"{self.session_warm_prefix}{worker_id}"

    @property
    def session_warm_prefix(self) -> str:
        """What every worker's list of warm containers is named with, before its id (the claim
        script, which finds the live workers itself, names the lists)."""
        return f"{self.prefix}:session-warm:"

    def session_calls(self, worker_id: str) -> str:
        """Stream of calls (open, run, close) to the sessions one worker holds."""
        return f"{self.session_calls_prefix}{worker_id}"

    @property
    def session_calls_prefix(self) -> str:
        """What every worker's session-call stream is named with, before its id."""
        return f"{self.prefix}:session-calls:"
