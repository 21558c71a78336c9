"""The Kubernetes manifests: valid objects, and names, ports and settings that agree.

Core kinds are checked against the Kubernetes OpenAPI schemas (kubernetes-validate); the KEDA
ScaledObject, a custom resource, against the stream and group names in service/store/keys.py.
"""

import copy
from pathlib import Path
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml

from service.settings import Settings
from service.store.jobs import LANES
from service.store.keys import WORKER_GROUP, Keys
from service.tenants import DEFAULT

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.30"
CUSTOM_KINDS = {"Kustomization", "ScaledObject"}


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def all_files() -> list[Path]:
    return sorted(MANIFESTS.rglob("*.yaml"))


def objects() -> list[dict]:
    return [doc for path in all_files() for doc in load(path) if doc["kind"] != "Kustomization"]


def find(kind: str, name: str) -> dict:
    matches = [o for o in objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def container(workload: dict) -> dict:
    (only,) = pod_spec(workload)["containers"]
    return only


def config_data() -> dict[str, str]:
    return find("ConfigMap", "sandbox-config")["data"]


def secret_data() -> dict[str, str]:
    return find("Secret", "sandbox-api-keys")["stringData"]


def test_every_document_parses_and_is_a_kubernetes_object() -> None:
    assert all_files()
    for path in all_files():
        for doc in load(path):
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path
            if doc["kind"] != "Kustomization":
                assert doc["metadata"].get("name"), path


@pytest.mark.parametrize("obj", [o for o in objects() if o["kind"] not in CUSTOM_KINDS],
                         ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_core_objects_match_the_kubernetes_schema(obj: dict) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    broken = copy.deepcopy(find("Deployment", "sandbox-api"))
    container(broken)["ports"][0]["containerPortt"] = container(broken)["ports"][0].pop("containerPort")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_optional_ones() -> None:
    (kustomization,) = load(MANIFESTS / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    namespaces = {o["metadata"].get("namespace") for o in objects() if o["kind"] not in
                  {"Namespace", "RuntimeClass"}}
    assert namespaces == {kustomization["namespace"]}
    images = {i["name"] for i in kustomization["images"]}
    used = {c["image"] for o in objects() if o["kind"] in {"Deployment", "StatefulSet"}
            for c in pod_spec(o)["containers"]}
    assert used <= images


@pytest.mark.parametrize(("service", "workload"), [
    ("sandbox-api", ("Deployment", "sandbox-api")),
    ("redis", ("StatefulSet", "redis")),
])
def test_services_select_their_pods_and_target_exposed_ports(service: str, workload: tuple) -> None:
    svc = find("Service", service)
    target = find(*workload)
    pod_labels = target["spec"]["template"]["metadata"]["labels"]
    assert target["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in container(target)["ports"]}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names


def test_api_probes_hit_the_health_endpoints_on_an_exposed_port() -> None:
    api = container(find("Deployment", "sandbox-api"))
    exposed = {p["name"] for p in api["ports"]} | {p["containerPort"] for p in api["ports"]}
    probes = {k: v for k, v in api.items() if k.endswith("Probe")}
    assert {"livenessProbe", "readinessProbe"} <= probes.keys()
    for probe in probes.values():
        assert probe["httpGet"]["path"] in {"/livez", "/readyz"}
        assert probe["httpGet"]["port"] in exposed
    env = {e["name"]: e["value"] for e in api["env"]}
    assert int(env["SANDBOX_PORT"]) in {p["containerPort"] for p in api["ports"]}


def test_every_setting_named_is_a_real_settings_field() -> None:
    fields = {f"SANDBOX_{name.upper()}" for name in Settings.model_fields}
    named = set(config_data()) | set(secret_data())
    for obj in objects():
        if obj["kind"] in {"Deployment", "StatefulSet"}:
            named |= {e["name"] for c in pod_spec(obj)["containers"] for e in c.get("env", [])}
    named = {n for n in named if n.startswith("SANDBOX_")}
    assert named, "no settings found"
    assert named <= fields, named - fields
    Settings(**{k.removeprefix("SANDBOX_").lower(): v for k, v in config_data().items()})


def test_api_keys_come_from_the_secret_not_the_config_map() -> None:
    assert "SANDBOX_API_KEYS" in secret_data()
    assert "SANDBOX_API_KEYS" not in config_data()
    refs = [r for r in container(find("Deployment", "sandbox-api"))["envFrom"] if "secretRef" in r]
    assert [r["secretRef"]["name"] for r in refs] == ["sandbox-api-keys"]
    worker = container(find("Deployment", "sandbox-worker"))
    assert all("secretRef" not in r for r in worker["envFrom"])


def test_redis_url_names_the_redis_service_and_appends_only() -> None:
    url = urlparse(config_data()["SANDBOX_REDIS_URL"])
    redis = find("Service", "redis")
    assert url.hostname == redis["metadata"]["name"]
    assert url.port in {p["port"] for p in redis["spec"]["ports"]}
    args = container(find("StatefulSet", "redis"))["args"]
    assert args[args.index("--appendonly") + 1] == "yes"


def test_worker_drives_the_nodes_docker_socket_without_privileges() -> None:
    worker = find("Deployment", "sandbox-worker")
    spec = pod_spec(worker)
    (volume,) = spec["volumes"]
    assert volume["hostPath"] == {"path": "/var/run/docker.sock", "type": "Socket"}
    (mount,) = container(worker)["volumeMounts"]
    assert (mount["name"], mount["mountPath"]) == (volume["name"], "/var/run/docker.sock")
    assert container(worker)["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["securityContext"]["supplementalGroups"]
    assert not spec["automountServiceAccountToken"]


def test_keda_scales_the_workers_on_the_job_stream_lag() -> None:
    scaled = find("ScaledObject", "sandbox-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    worker = find("Deployment", "sandbox-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 1
    triggers = scaled["spec"]["triggers"]
    keys = Keys(config_data()["SANDBOX_KEY_PREFIX"])
    assert [t["metadata"]["stream"] for t in triggers] == [keys.jobs(lane, DEFAULT) for lane in LANES]
    url = urlparse(config_data()["SANDBOX_REDIS_URL"])
    for trigger in triggers:
        assert trigger["type"] == "redis-streams"
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == WORKER_GROUP
        assert int(meta["lagCount"]) > 0
        host, port = meta["address"].rsplit(":", 1)
        assert host == f"{url.hostname}.{scaled['metadata']['namespace']}.svc.cluster.local"
        assert int(port) == url.port
        assert meta["databaseIndex"] == url.path.strip("/")


def test_gvisor_runtime_class_is_optional() -> None:
    runtime_class = find("RuntimeClass", "gvisor")
    assert runtime_class["handler"] == "runsc"
    (kustomization,) = load(MANIFESTS / "kustomization.yaml")
    assert not any("gvisor" in r for r in kustomization["resources"])
