"""Rendering of /metrics and the counting of results, without Redis."""

import math

import orjson
from prometheus_client.parser import text_string_to_metric_families

from service import metrics, wire
from service.jobspec import JobSpec
from service.metrics import JOBS, QUEUE_WAIT, RECLAIMED
from service.models import Outcome
from service.result import from_report, sandbox_error
from service.stats import Recorder, job_language, percentiles
from service.store.stats import Tally

LABELS = (("language", "python"), ("outcome", "ok"))


def parse(text: str) -> dict[str, list]:
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def job(payload: bytes = b"{}") -> wire.Job:
    return wire.Job("1-0", "abc", payload, "", 0.0, 0.0)


def spec_json(language: str = "python") -> bytes:
    return JobSpec(language=language, code="print(1)", stdin_b64=None, files_b64={},
                   timeout_s=1, memory_mb=64, max_output_bytes=100, max_file_bytes=100,
                   fresh_interpreter=False).model_dump_json().encode()


def test_histogram_renders_cumulative_buckets() -> None:
    tally = Tally()
    for seconds in (0.0005, 0.003, 0.003, 7.0, 1000.0):
        tally.observe(QUEUE_WAIT, LABELS, seconds)
    tally.add(JOBS, LABELS, 5)
    samples = parse(metrics.render(dict(tally.counts), {}))
    buckets = {s.labels["le"]: s.value for s in samples["sandbox_job_queue_wait_seconds_bucket"]}
    assert buckets["0.001"] == 1
    assert buckets["0.005"] == 3
    assert buckets["5.0"] == 3
    assert buckets["10.0"] == 4
    assert buckets["600.0"] == 4
    assert buckets["+Inf"] == 5
    assert samples["sandbox_job_queue_wait_seconds_count"][0].value == 5
    assert math.isclose(samples["sandbox_job_queue_wait_seconds_sum"][0].value, 1007.0065)
    assert samples["sandbox_jobs_total"][0].labels == dict(LABELS)
    assert samples["sandbox_jobs_total"][0].value == 5


def test_every_family_is_exposed_even_before_any_job() -> None:
    gauges = metrics.live_gauges({"interactive": 3, "bulk": 5},
                                 [{"capacity": "4", "containers": "4", "busy": "1"},
                                  {"capacity": "4", "containers": "3", "busy": "2",
                                   "starting": "3"}])
    text = metrics.render({}, gauges)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for family in metrics.FAMILIES:
        assert family.name.removesuffix("_total") in families
    samples = parse(text)
    depths = {s.labels["lane"]: s.value for s in samples["sandbox_queue_depth"]}
    assert depths == {"interactive": 3, "bulk": 5}
    assert samples["sandbox_workers"][0].value == 2
    assert samples["sandbox_pool_size"][0].value == 8
    assert samples["sandbox_pool_containers"][0].value == 7
    assert samples["sandbox_pool_busy_containers"][0].value == 3
    assert samples["sandbox_pool_starting_containers"][0].value == 3
    assert samples["sandbox_jobs_reclaimed_total"][0].value == 0


def test_names_follow_the_conventions() -> None:
    for family in metrics.FAMILIES:
        assert family.name.startswith("sandbox_")
        assert family.name.endswith("_total") == (family.kind == "counter")
        if family.kind == "histogram":
            assert family.name.endswith("_seconds")


def test_label_values_are_escaped() -> None:
    tally = Tally()
    tally.observe(metrics.HTTP_DURATION, (("route", 'a"b\\c\nd'), ("status", "200")), 0.1)
    (sample,) = [s for s in parse(metrics.render(dict(tally.counts), {}))[
        "sandbox_http_request_duration_seconds_count"]]
    assert sample.labels["route"] == 'a"b\\c\nd'


def test_a_result_is_counted_from_its_fields() -> None:
    report = {"exit_code": 1, "signal": None, "stdout": "", "stderr": "",
              "stdout_truncated": False, "stderr_truncated": False, "run_ms": 250.0,
              "cpu_ms": 12.5, "cpu_wait_ms": 0.5}
    recorder = Recorder(None, "worker")  # type: ignore[arg-type]  # nothing flushed here
    recorder.job_done(job(spec_json()), from_report("abc", report, Outcome.ERROR, None,
                                                    1500.0, 1800.0))
    labels = (("language", "python"), ("outcome", "error"))
    assert recorder.tally.counts[(JOBS.name, labels)] == 1
    assert recorder.tally.counts[(f"{QUEUE_WAIT.name}_sum", labels)] == 1.5
    assert list(recorder.tally.latencies) == ["1.500000 0.250000 1.800000"]
    assert not recorder.tally.errors


def test_a_sandbox_error_is_counted_and_kept() -> None:
    recorder = Recorder(None, "worker")  # type: ignore[arg-type]
    recorder.job_done(job(), sandbox_error("abc", "no container", wire.now_ms() - 2000))
    labels = (("language", "unknown"), ("outcome", "sandbox_error"))
    assert recorder.tally.counts[(JOBS.name, labels)] == 1
    queue_s, run_s, _ = map(float, recorder.tally.latencies[0].split())
    assert 1.9 < queue_s < 60 and run_s == 0
    (error,) = recorder.tally.errors
    assert orjson.loads(error)["message"] == "no container"


def test_language_is_read_from_the_start_of_a_real_job_payload() -> None:
    assert job_language(spec_json()) == "python"
    assert job_language(b'{"code":"print(1)"}') == "unknown"


def test_a_failed_flush_is_merged_back() -> None:
    older, newer = Tally(), Tally()
    older.add(RECLAIMED, (), 2)
    older.latencies.extend(["1 1 1", "2 2 2"])
    older.answered("ok", "team-a", 100.0)
    newer.add(RECLAIMED, (), 1)
    newer.latencies.append("3 3 3")
    newer.merge(older)
    assert newer.counts[(RECLAIMED.name, ())] == 3
    assert list(newer.latencies) == ["1 1 1", "2 2 2", "3 3 3"]
    assert newer.throughput[(5, 20, "ok")] == 1
    assert not Tally()


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert percentiles([0.2]) == {"p50": 0.2, "p95": 0.2, "p99": 0.2}
    assert percentiles([]) == {}
