"""What the service measures, and how it reads in the Prometheus text format.

Counters and histograms are summed across every API and worker process (service/stats.py
records them, service/store/stats.py keeps them in Redis); gauges come from live state at scrape
time. Names share the prefix `sandbox_`, values are in base units (seconds), counters end in
`_total`.
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]
SampleKey = tuple[str, Labels]

# From a fork of a warm interpreter (about a millisecond) to the longest allowed timeout.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # counter, gauge or histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


HTTP_DURATION = Family("sandbox_http_request_duration_seconds", "histogram",
                       "API request latency, by route template and status code.",
                       ("route", "status"), DURATION_BUCKETS)
QUEUE_WAIT = Family("sandbox_job_queue_wait_seconds", "histogram",
                    "From enqueue to the start of execution.", ("language", "outcome"),
                    DURATION_BUCKETS)
RUN_TIME = Family("sandbox_job_run_seconds", "histogram",
                  "The execution itself, inside the sandbox.", ("language", "outcome"),
                  DURATION_BUCKETS)
JOBS = Family("sandbox_jobs_total", "counter", "Jobs answered, by language and outcome.",
              ("language", "outcome"))
TENANT_JOBS = Family("sandbox_tenant_jobs_total", "counter",
                     "Jobs answered, by tenant (the tenants file bounds them) and outcome.",
                     ("tenant", "outcome"))
RECLAIMED = Family("sandbox_jobs_reclaimed_total", "counter",
                   "Jobs taken over from a worker that stopped answering.")
DEAD_LETTERED = Family("sandbox_jobs_dead_lettered_total", "counter",
                       "Jobs delivered too often, answered with sandbox_error.")
CANCELLED = Family("sandbox_jobs_cancelled_total", "counter",
                   "Jobs cancelled before they ended (their caller hung up, or DELETE): dropped "
                   "unstarted or killed running.")
QUEUE_DEPTH = Family("sandbox_queue_depth", "gauge",
                     "Jobs in a lane's stream: waiting or running (the lane's admission limit "
                     "counts these).", ("lane",))
WORKERS = Family("sandbox_workers", "gauge", "Workers whose heartbeat is recent.")
POOL_SIZE = Family("sandbox_pool_size", "gauge",
                   "Warm containers the live workers are configured to keep (concurrent executions).")
POOL_CONTAINERS = Family("sandbox_pool_containers", "gauge", "Warm containers alive.")
POOL_BUSY = Family("sandbox_pool_busy_containers", "gauge", "Containers running a job now.")
POOL_STARTING = Family("sandbox_pool_starting_containers", "gauge",
                       "Warm containers on their way (pools and sessions' warm ones).")
TENANT_QUEUED = Family("sandbox_tenant_queued_jobs", "gauge",
                       "A tenant's jobs waiting or running (its max_queued counts these).",
                       ("tenant",))
TENANT_RUNNING = Family("sandbox_tenant_running_jobs", "gauge",
                        "A tenant's jobs running now (its max_running caps these).", ("tenant",))

STORED = (HTTP_DURATION, QUEUE_WAIT, RUN_TIME, JOBS, TENANT_JOBS, RECLAIMED, DEAD_LETTERED,
          CANCELLED)
LIVE = (QUEUE_DEPTH, WORKERS, POOL_SIZE, POOL_CONTAINERS, POOL_BUSY, POOL_STARTING)
PER_TENANT = (TENANT_QUEUED, TENANT_RUNNING)
FAMILIES = STORED + LIVE + PER_TENANT


def stored_field(key: SampleKey) -> bytes:
    """A sample's field in the metrics hash where service/store/stats.py keeps counters."""
    return orjson.dumps(key)


def bucket_bound(family: Family, value: float) -> str:
    """The `le` of the one bucket a value falls in (buckets are stored non-cumulative)."""
    for bound in family.buckets:
        if value <= bound:
            return repr(float(bound))
    return "+Inf"


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _line(name: str, labels: Labels, value: float) -> str:
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        return f"{name}{{{inner}}} {format_value(value)}"
    return f"{name} {format_value(value)}"


def _header(family: Family) -> list[str]:
    return [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]


def _render_counter(family: Family, samples: Mapping[SampleKey, float]) -> list[str]:
    found = sorted((labels, v) for (name, labels), v in samples.items() if name == family.name)
    if not found and not family.labels:
        found = [((), 0.0)]
    return [_line(family.name, labels, value) for labels, value in found]


def _render_histogram(family: Family, samples: Mapping[SampleKey, float]) -> list[str]:
    per_bucket: dict[Labels, dict[str, float]] = defaultdict(dict)
    sums: dict[Labels, float] = {}
    for (name, labels), value in samples.items():
        if name == f"{family.name}_bucket":
            rest = tuple(kv for kv in labels if kv[0] != "le")
            per_bucket[rest][dict(labels)["le"]] = value
        elif name == f"{family.name}_sum":
            sums[labels] = value
    lines = []
    bounds = [*(repr(float(b)) for b in family.buckets), "+Inf"]
    for labels in sorted(per_bucket):
        running = 0.0
        for le in bounds:
            running += per_bucket[labels].get(le, 0.0)
            lines.append(_line(f"{family.name}_bucket", (*labels, ("le", le)), running))
        lines.append(_line(f"{family.name}_sum", labels, sums.get(labels, 0.0)))
        lines.append(_line(f"{family.name}_count", labels, running))
    return lines


def render(stored: Mapping[SampleKey, float], gauges: Mapping[SampleKey, float],
           per_tenant: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """The exposition text: stored counters and histograms, then the live gauges (those by
    tenant from `per_tenant`: family name → tenant → value)."""
    lines: list[str] = []
    for family in STORED:
        lines += _header(family)
        if family.kind == "histogram":
            lines += _render_histogram(family, stored)
        else:
            lines += _render_counter(family, stored)
    for family in LIVE:
        lines += _header(family) + _render_counter(family, gauges)
    for family in PER_TENANT:
        lines += _header(family)
        values = (per_tenant or {}).get(family.name, {})
        lines += [_line(family.name, (("tenant", t),), v) for t, v in sorted(values.items())]
    return "\n".join(lines) + "\n"


def sample_names(families: Iterable[Family] = FAMILIES) -> set[str]:
    """Every series name /metrics can expose (histograms' _bucket, _sum and _count included)."""
    names = set()
    for family in families:
        if family.kind == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        else:
            names.add(family.name)
    return names


def live_gauges(depths: Mapping[str, int],
                workers: list[dict[str, str]]) -> dict[SampleKey, float]:
    """The gauges, from each lane's length and the live workers' heartbeat descriptions."""
    return {
        **{(QUEUE_DEPTH.name, (("lane", lane),)): depth for lane, depth in depths.items()},
        (WORKERS.name, ()): len(workers),
        (POOL_SIZE.name, ()): workers_total(workers, "capacity"),
        (POOL_CONTAINERS.name, ()): workers_total(workers, "containers"),
        (POOL_BUSY.name, ()): workers_total(workers, "busy"),
        (POOL_STARTING.name, ()): workers_total(workers, "starting"),
    }


def workers_total(workers: list[dict[str, str]], field: str) -> int:
    """A count summed over the live workers' heartbeats (`starting`: the warm containers on
    their way, their pools' and the ones they keep for sessions)."""
    return sum(int(float(w.get(field) or 0)) for w in workers)
