"""The deployment files are valid: rendered Kustomize overlays against the Kubernetes schemas,
docker-compose.yml against the compose spec, and the Dockerfiles and Grafana dashboard checked for
what the platform team relies on."""

from __future__ import annotations

import importlib.resources
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.settings import ALL_TOPICS, SERVICES

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.32"
STRIMZI_TOPIC = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kafka.strimzi.io/v1beta2"},
        "metadata": {
            "type": "object",
            "required": ["name", "labels"],
            "properties": {
                "labels": {"type": "object", "required": ["strimzi.io/cluster"]},
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
            },
        },
        "spec": {
            "type": "object",
            "required": ["topicName", "partitions", "replicas"],
            "additionalProperties": False,
            "properties": {
                "topicName": {"type": "string"},
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "integer"]},
                },
            },
        },
    },
}


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (for `kubectl kustomize`) is not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlays_render_to_valid_kubernetes_manifests(overlay: str) -> None:
    documents = render(overlay)
    kinds = sorted({d["kind"] for d in documents})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "KafkaTopic",
        "PodDisruptionBudget",
        "Service",
    ]
    for document in documents:
        if document["kind"] == "KafkaTopic":  # a Strimzi resource: not in the Kubernetes schemas
            jsonschema.validate(document, STRIMZI_TOPIC)
        else:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    topics = {d["spec"]["topicName"] for d in documents if d["kind"] == "KafkaTopic"}
    assert topics == set(ALL_TOPICS)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_service_is_deployed_as_the_platform_team_expects(overlay: str) -> None:
    documents = render(overlay)
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert set(deployments) == {s.replace("_", "-") for s in SERVICES}
    autoscaled = {
        d["spec"]["scaleTargetRef"]["name"]
        for d in documents
        if d["kind"] == "HorizontalPodAutoscaler"
    }
    assert autoscaled == set(deployments) - {"kpi"}  # one KPI replica: see deploy/base/kpi.yaml
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        (container,) = pod["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert {"requests", "limits"} <= set(container["resources"]), name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        secrets = {e["name"] for e in container["env"] if "valueFrom" in e}
        service = name.replace("-", "_").upper()
        assert {f"BATON_{service}_DATABASE_URL", "BATON_JWT_SECRET"} <= secrets, name
    assert deployments["kpi"]["spec"]["replicas"] == 1


def test_no_secret_values_in_the_manifests() -> None:
    for path in (ROOT / "deploy").rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            assert not (document and document.get("kind") == "Secret"), path


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_file_follows_the_compose_spec() -> None:
    spec = (
        importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    )
    jsonschema.validate(compose(), json.loads(spec.read_text()))


def test_compose_runs_each_service_from_its_dockerfile_after_its_dependencies() -> None:
    services = compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"].startswith("postgres:")
    for name in SERVICES:
        service = services[name]
        assert service["build"] == {"context": ".", "dockerfile": f"services/{name}/Dockerfile"}
        assert (ROOT / service["build"]["dockerfile"]).is_file()
        conditions = {k: v["condition"] for k, v in service["depends_on"].items()}
        assert conditions == {
            "postgres": "service_healthy",
            "kafka": "service_healthy",
            "topics": "service_completed_successfully",
        }
        environment = service["environment"]
        assert environment[f"BATON_{name.upper()}_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert environment["BATON_JWT_SECRET"].startswith("${BATON_JWT_SECRET:?")  # no default


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfiles_are_small_non_root_and_healthchecked(service: str) -> None:
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    assert text.count("FROM python:3.11-slim") == 2  # a build stage, then only the venv
    assert re.search(r"^USER 10001$", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert f'CMD ["baton", "serve", "{service}"]' in text


def test_grafana_dashboard_charts_metrics_the_services_export() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "baton.json").read_text())
    exported = set(re.findall(r'"(baton_[a-z_]+)"', (ROOT / "shared/metrics.py").read_text()))
    exported |= {"baton_kpi_value"}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = {
                re.sub(r"_(total|bucket)$", "", m)
                for m in re.findall(r"\bbaton_[a-z_]+", target["expr"])
            }
            assert names and names <= exported, (panel["title"], names - exported)
