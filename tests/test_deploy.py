"""deploy/ checked offline: the Kubernetes overlays rendered by kustomize and validated against the
Kubernetes schemas, the compose file against the Compose Specification, the Dockerfiles' targets,
and every setting, module, extra and metric they name against the code."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S_VERSIONS = ("1.30.0", "1.37.0")
SERVICES = ("registry", "data", "train", "eval", "serve", "iam")
SETTINGS_MODULES = (
    "services.registry.server",
    "services.registry.worker",
    "services.data.server",
    "services.data.worker",
    "services.train.server",
    "services.train.worker",
    "services.eval.server",
    "services.eval.worker",
    "services.serve.server",
    "services.serve.worker",
    "services.iam.server",
    "services.console.server",
)


def known_settings() -> set[str]:
    """Every TUNEFORGE_* variable some process reads (its settings class's fields)."""
    from pydantic_settings import BaseSettings

    names = set()
    for module_name in SETTINGS_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings:
                prefix = value.model_config.get("env_prefix", "")
                names |= {f"{prefix}{field}".upper() for field in value.model_fields}
    return names


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed; the base is validated alone")
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "kubernetes" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def validate_all(docs: list[dict[str, Any]]) -> None:
    for version in K8S_VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)


def base_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes" / "base").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def test_the_base_manifests_are_valid_kubernetes_and_the_validator_refuses_a_wrong_field() -> None:
    docs = base_docs()
    validate_all(docs)
    broken = copy.deepcopy(by_kind(docs, "Deployment")["train"])
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_each_overlay_renders_and_validates(overlay: str) -> None:
    docs = render(overlay)
    validate_all(docs)
    deployments = by_kind(docs, "Deployment")
    namespace = "tuneforge-dev" if overlay == "dev" else "tuneforge"
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {namespace}
    for name in SERVICES:
        pod = deployments[name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["readinessProbe"]["grpc"]["port"] == 50051, name
        assert container["livenessProbe"]["grpc"]["port"] == 50051, name
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert name in by_kind(docs, "Service") and name in by_kind(docs, "PodDisruptionBudget")
        assert by_kind(docs, "HorizontalPodAutoscaler")[name]["spec"]["scaleTargetRef"]["name"] == name
    assert deployments["registry"]["spec"]["replicas"] == (1 if overlay == "dev" else 3)
    console = deployments["console"]["spec"]["template"]["spec"]["containers"][0]
    assert console["readinessProbe"]["httpGet"]["path"] == "/healthz"
    gpu = deployments["gpu-worker"]["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["nodeSelector"] and gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
    serving = deployments["serve-worker"]["spec"]["template"]["spec"]
    if overlay == "dev":  # no GPU in development clusters
        assert deployments["gpu-worker"]["spec"]["replicas"] == 0
        assert "nvidia.com/gpu" not in serving["containers"][0]["resources"]["limits"]
        assert {s["metadata"]["name"].rsplit("-", 1)[0] for s in by_kind(docs, "Secret").values()} == {
            "tuneforge-secrets",
            "tuneforge-worker-secrets",
        }
    else:  # production Secrets are the operator's, never in the repository
        assert not by_kind(docs, "Secret")
        assert serving["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert all(
            c["image"].startswith("registry.example.com/") and c["image"].endswith(":0.1.0")
            for d in deployments.values()
            for c in d["spec"]["template"]["spec"]["containers"]
        )


def test_kubernetes_settings_modules_and_images_name_real_things() -> None:
    docs = base_docs()
    known = known_settings()
    config = by_kind(docs, "ConfigMap")["tuneforge-config"]["data"]
    assert not set(config) - known, f"unknown settings in the ConfigMap: {set(config) - known}"
    services = set(by_kind(docs, "Service"))
    for key, value in config.items():
        if (
            key.endswith("_ENDPOINT")
            and key.removeprefix("TUNEFORGE_").removesuffix("_ENDPOINT").lower() in SERVICES
        ):
            assert value.split(":")[0] in services, f"{key} names {value}, which is no Service"
    targets = dockerfile_targets(DEPLOY / "docker" / "Dockerfile") | dockerfile_targets(
        DEPLOY / "docker" / "Dockerfile.gpu"
    )
    for deployment in by_kind(docs, "Deployment").values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"].removeprefix("tuneforge/") in targets, container["image"]
        assert container["args"][:2] == ["python", "-m"] and importlib.util.find_spec(container["args"][2])
        names = {e["name"] for e in container.get("env", [])} - {"POD_IP"}
        assert not names - known, f"{deployment['metadata']['name']}: unknown settings {names - known}"


def dockerfile_targets(path: Path) -> set[str]:
    return {
        match.group(1)
        for match in re.finditer(r"^FROM\s+\S+\s+AS\s+(\S+)", path.read_text(), re.MULTILINE | re.IGNORECASE)
    }


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_every_image_installs_one_extra_runs_unprivileged_and_checks_its_health(name: str) -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    parser = DockerfileParser(fileobj=(DEPLOY / "docker" / name).open("rb"))
    stages: dict[str, list[dict[str, Any]]] = {}
    current = None
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            current = instruction["value"].split()[-1]
            stages[current] = []
        if current is not None:  # ARGs before the first FROM belong to no stage
            stages[current].append(instruction)

    def settled(stage: str) -> dict[str, str]:
        """A stage's instructions by kind, over those of the stage it starts FROM."""
        parent = stages[stage][0]["value"].split()[0]
        inherited = settled(parent) if parent in stages else {}
        return inherited | {i["instruction"]: i["value"] for i in stages[stage]}

    final = {s: ins for s, ins in stages.items() if any(i["instruction"] == "CMD" for i in ins)}
    assert final, "no runnable target"
    for stage in final:
        kinds = settled(stage)
        if stage == "tools":
            assert kinds["USER"].startswith("10001")
            continue
        assert kinds["USER"].startswith("10001"), f"{name}:{stage} runs as root"
        assert "services.kit.healthcheck" in kinds["HEALTHCHECK"], f"{name}:{stage} has no health check"
        module = json.loads(kinds["CMD"])[2]
        assert importlib.util.find_spec(module), f"{name}:{stage} runs {module}, which does not exist"
    for extra in re.findall(r"tuneforge-\*\.whl\)\[([a-z-]+)\]", (DEPLOY / "docker" / name).read_text()):
        assert extra in extras, f"{name} installs the extra {extra!r}, which pyproject.toml lacks"
    # No torch in the control-plane images: their install lines name only their own extra.
    if name == "Dockerfile":
        for stage in ("registry", "train", "eval", "iam", "serve", "data"):
            assert not any("torch" in i["value"] for i in stages[stage]), stage


def test_the_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    check = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run(
        [*check, str(DEPLOY / "compose.yaml")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        (DEPLOY / "compose.yaml").read_text().replace("restart: unless-stopped", "restart: 3", 1)
    )
    result = subprocess.run([*check, str(broken)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "restart" in result.stdout, result.stdout


def test_the_compose_deployment_names_real_settings_targets_and_health_checks() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # merges the x- anchors
    known = known_settings()
    targets = dockerfile_targets(DEPLOY / "docker" / "Dockerfile")
    services = compose["services"]
    for name in (
        *SERVICES,
        "worker",
        "eval-worker",
        "data-worker",
        "registry-worker",
        "serve-worker",
        "console",
    ):
        service = services[name]
        assert service["build"]["target"] in targets, name
        if name != "console":  # the console needs only the services
            assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        names = {k for k in service["environment"] if k.startswith("TUNEFORGE_")}
        assert not names - known, f"{name}: unknown settings {names - known}"
    for infrastructure in ("postgres", "nats", "minio"):
        assert services[infrastructure]["healthcheck"]["test"], infrastructure
    assert (DEPLOY / "compose" / "nats.conf").read_text().count("password: $NATS_") == 2
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "example.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    needed = set(re.findall(r"\$\{([A-Z_]+):\?", (DEPLOY / "compose.yaml").read_text()))
    assert needed <= set(example), f"deploy/example.env lacks {needed - set(example)}"


def test_alerts_and_the_dashboard_use_series_the_processes_export() -> None:
    importlib.import_module("services.kit.telemetry")
    importlib.import_module("services.train.monitoring")
    importlib.import_module("services.serve.calls")
    exported = set()
    for metric in REGISTRY.collect():
        exported |= {metric.name, f"{metric.name}_total", f"{metric.name}_bucket", f"{metric.name}_count"}
    exported |= {"tuneforge_gpu_utilization_ratio", "tuneforge_gpu_memory_used_bytes"}  # NVML, at scrape time
    alerts = yaml.safe_load((DEPLOY / "monitoring" / "alerts.yaml").read_text())
    rules = alerts["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {
        "TuneForgeJobStuckInQueue",
        "TuneForgeWorkerLost",
        "TuneForgeHighErrorRate",
        "TuneForgeObjectStoreUnreachable",
    }
    dashboard = json.loads((DEPLOY / "monitoring" / "grafana-dashboard.json").read_text())
    expressions = [r["expr"] for r in rules] + [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for expr in expressions:
        for series in re.findall(r"\btuneforge_[a-z_]+", expr):
            assert series in exported, f"{series} (in {expr!r}) is exported by no process"
    for rule in rules:
        assert rule["annotations"]["summary"] and rule["labels"]["severity"] in ("warning", "critical")
