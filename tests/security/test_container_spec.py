"""The hardened container spec and the network sandbox pieces, without Docker (pure functions)."""

from pathlib import Path

import pytest

from service.jobspec import InvalidRequest, build_job_spec
from service.models import RunRequest
from service.settings import Settings
from service.worker import firewall
from service.worker.docker_engine import RUNTIME_PIDS, Owner, container_spec
from service.worker.networked import bridge_name, network_options

OWNER = Owner("dep", "host-1-abc", "host", 1)


def spec(network: str | None = None, **settings: object) -> dict:
    return container_spec(Settings(**settings), "sandbox-python:latest", OWNER, 256, network)


def test_no_runtime_by_default_the_engines_own() -> None:
    assert "runtime" not in spec()["host_config"]


def test_the_runtime_setting_reaches_the_container() -> None:
    assert spec(runtime="runsc")["host_config"]["runtime"] == "runsc"


@pytest.mark.parametrize("runtime", [None, "runsc"])
def test_hardening_holds_whatever_the_runtime(runtime: str | None) -> None:
    created = spec(runtime=runtime)
    host = created["host_config"]
    assert host["network_mode"] == "none"
    assert host["read_only"] is True
    assert host["cap_drop"] == ["ALL"]
    assert sorted(host["cap_add"]) == ["KILL", "SETGID", "SETUID"]
    assert host["security_opt"] == ["no-new-privileges"]
    # Under gVisor the container's pids also count the sandbox kernel's threads and processes.
    assert host["pids_limit"] == Settings().container_pids + (RUNTIME_PIDS if runtime else 0)
    assert host["mem_limit"] == host["memswap_limit"]
    assert host["ipc_mode"] == "private"
    assert "privileged" not in host and "devices" not in host
    assert all("docker.sock" not in str(v) for v in host.get("binds", {}))
    assert set(created["environment"]) <= {"SANDBOX_PRELOAD", "SANDBOX_SOCKET"}
    assert "nosuid" in host["tmpfs"]["/tmp"] and "nodev" in host["tmpfs"]["/tmp"]


def test_a_network_sandbox_joins_its_network_and_nothing_else_changes() -> None:
    plain, networked = spec(), spec("dep-sbx123")
    assert networked["host_config"]["network_mode"] == "dep-sbx123"
    plain["host_config"].pop("network_mode")
    networked["host_config"].pop("network_mode")
    assert str(plain) == str(networked)


def test_bridge_names_fit_linux_interface_names_and_differ_per_worker() -> None:
    names = {bridge_name(f"host-{i}-abcdef") for i in range(1000)}
    assert len(names) == 1000
    assert all(len(n) <= 15 and n.startswith("sbx") for n in names)


def test_network_options_turn_inter_container_traffic_off() -> None:
    options = network_options("sbx0")
    assert options["com.docker.network.bridge.enable_icc"] == "false"
    assert options["com.docker.network.bridge.name"] == "sbx0"


def test_the_wall_rejects_what_the_sandbox_starts_on_its_bridge() -> None:
    rule = firewall.wall_rule("sbx0")
    assert rule[:3] == ["INPUT", "-i", "sbx0"]
    assert rule[-2:] == ["-j", "REJECT"]
    assert rule[rule.index("--ctstate") - 1] == "!"


def test_network_is_refused_unless_the_operator_allows_it() -> None:
    request = RunRequest(code="print(1)", network=True)
    with pytest.raises(InvalidRequest) as refused:
        build_job_spec(request, Settings())
    assert refused.value.reason == "network_not_allowed"
    assert build_job_spec(request, Settings(allow_network=True)).network is True
    assert build_job_spec(RunRequest(code="print(1)"), Settings()).network is False


def test_the_network_pool_fails_closed_without_a_firewall(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Where iptables refuses (no root, no tool), the wall raises: no network sandbox starts."""
    for tool in firewall.TOOLS:
        fake = tmp_path / tool
        fake.write_text("#!/bin/sh\necho 'Permission denied (you must be root)' >&2\nexit 4\n")
        fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(firewall.FirewallError, match="must be root"):
        firewall.wall_off("sbx0")
    assert not firewall.is_walled("sbx0")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(firewall.FirewallError):
        firewall.wall_off("sbx0")
