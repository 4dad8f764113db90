"""The deployment files stay true, offline: the Kubernetes manifests validate against pinned
Kubernetes schemas (``kubernetes-validate`` bundles them: no cluster, no network), and the
Dockerfile, compose file and manifests name only real CLI commands, real routes and real
``MAILPORT_*`` settings. No container engine runs here, so nothing is built or started."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import typer.main
import yaml

from mailport.api.app import create_app
from mailport.api.worker_http import ROUTES as WORKER_ROUTES
from mailport.cli.main import app as cli_app
from mailport.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES_VERSION = "1.34.0"  # the schemas the manifests must satisfy (strict: no unknown fields)
DEPLOY_FILES = [
    DOCKERFILE,
    COMPOSE,
    *sorted(DEPLOY.glob("*.env.example")),
    *sorted(K8S.glob("*.yaml")),
    ROOT / "docs" / "production.md",
]


def _manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in _manifests() if doc["kind"] == kind]


def _deployment(component: str) -> dict[str, Any]:
    [found] = [
        d
        for d in _by_kind("Deployment")
        if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    return found


def _container(component: str) -> dict[str, Any]:
    containers = _deployment(component)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _routes() -> set[str]:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    return {getattr(route, "path", "") for route in app.routes}


def _is_cli_command(argv: list[str]) -> bool:
    """True when ``mailport ARGV…`` names a real (sub)command of the CLI."""
    command: click.Command = typer.main.get_command(cli_app)
    for word in argv:
        if word.startswith("-"):
            break
        if not isinstance(command, click.Group):
            break
        sub = command.commands.get(word)
        if sub is None:
            return False
        command = sub
    return not isinstance(command, click.Group)


@pytest.mark.parametrize("doc", _manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_validates_against_the_pinned_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_refused() -> None:
    """The validation is real: an unknown field and a wrong type are errors."""
    bad = _deployment("api")
    bad = {**bad, "spec": {**bad["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**_deployment("worker"), "spec": "x"}, KUBERNETES_VERSION, strict=True)


def test_the_manifests_have_every_part() -> None:
    kinds = sorted(doc["kind"] for doc in _manifests())
    for kind in ("Deployment", "Service", "Secret", "PodDisruptionBudget"):
        assert kind in kinds, kinds
    assert _container("api")["args"] == ["serve"]
    assert _container("worker")["args"] == ["worker"]
    assert all(_is_cli_command(list(d["spec"]["template"]["spec"]["containers"][0]["args"]))
               for d in _by_kind("Deployment") + _by_kind("Job"))  # fmt: skip
    api_env = {e["name"]: e.get("value") for e in _container("api").get("env", [])}
    assert api_env.get("MAILPORT_WATCHERS") == "false", "the api leaves the watching to the workers"


def test_the_api_probes_ask_the_real_health_routes() -> None:
    routes = _routes()
    api = _container("api")
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["path"] in routes
    port = api["livenessProbe"]["httpGet"]["port"]
    assert port in {p["name"] for p in api["ports"]} | {p["containerPort"] for p in api["ports"]}
    assert {p["containerPort"] for p in api["ports"]} == {Settings.model_fields["port"].default}


def test_the_worker_probes_ask_its_own_port() -> None:
    """A worker answers on MAILPORT_WORKER_PORT only (mailport.api.worker_http), not the API's."""
    worker = _container("worker")
    env = {e["name"]: e.get("value") for e in worker.get("env", [])}
    port = int(env["MAILPORT_WORKER_PORT"])
    assert port != Settings.model_fields["port"].default
    named = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert set(named.values()) == {port}
    assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert worker[probe]["httpGet"]["path"] in WORKER_ROUTES
        assert named.get(worker[probe]["httpGet"]["port"], worker[probe]["httpGet"]["port"]) == port
    annotations = _deployment("worker")["spec"]["template"]["metadata"]["annotations"]
    assert (
        annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] in WORKER_ROUTES
    )


def test_selectors_match_the_pods() -> None:
    api_labels = _deployment("api")["spec"]["template"]["metadata"]["labels"]
    [service] = _by_kind("Service")
    assert service["spec"]["selector"].items() <= api_labels.items()
    budgets = _by_kind("PodDisruptionBudget")
    covered = {
        component
        for component in ("api", "worker")
        for pdb in budgets
        if pdb["spec"]["selector"]["matchLabels"].items()
        <= _deployment(component)["spec"]["template"]["metadata"]["labels"].items()
    }
    assert covered == {"api", "worker"}
    for component in ("api", "worker"):
        deployment = _deployment(component)
        assert (
            deployment["spec"]["selector"]["matchLabels"].items()
            <= deployment["spec"]["template"]["metadata"]["labels"].items()
        )


def test_the_pods_run_as_non_root() -> None:
    for doc in _by_kind("Deployment") + _by_kind("Job"):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0


def test_the_secret_holds_placeholders_only() -> None:
    [secret] = _by_kind("Secret")
    values = secret["stringData"]
    assert {"MAILPORT_SECRET_KEYS", "MAILPORT_ADMIN_KEY", "MAILPORT_DATABASE_URL"} <= values.keys()
    for name, value in values.items():
        assert "CHANGE-ME" in value, f"{name}: only a placeholder belongs in the repository"


def test_every_mailport_variable_in_the_deploy_files_is_a_real_setting() -> None:
    known = {f"MAILPORT_{name.upper()}" for name in Settings.model_fields}
    used: dict[str, set[str]] = {}
    for path in DEPLOY_FILES:
        for name in re.findall(r"\bMAILPORT_[A-Z0-9_]+\b", path.read_text()):
            used.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    known |= {"MAILPORT_URL", "MAILPORT_KEY"}  # the docs examples' variables
    unknown = {name: files for name, files in used.items() if name not in known}
    assert not unknown, f"not settings of mailport.config.Settings: {unknown}"
    assert len(used) >= 5


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_the_compose_file_runs_postgres_one_serve_and_two_workers() -> None:
    services = _compose()["services"]
    assert {"postgres", "serve", "worker"} <= services.keys()
    assert services["serve"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["serve"]["environment"]["MAILPORT_WATCHERS"] == "false"
    for name, service in services.items():
        if "command" in service:
            assert _is_cli_command(service["command"]), f"{name}: mailport {service['command']} is no command"
        assert "healthcheck" in service, f"{name}: no healthcheck"
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services
            assert rule["condition"] in {"service_healthy", "service_completed_successfully"}


def test_the_compose_healthchecks_ask_real_routes_and_commands() -> None:
    services = _compose()["services"]
    routes = _routes()
    serve_check = " ".join(services["serve"]["healthcheck"]["test"])
    paths = re.findall(r"127\.0\.0\.1:8025(/[a-z]+)", serve_check)
    assert paths and set(paths) <= routes
    worker = services["worker"]
    worker_check = " ".join(worker["healthcheck"]["test"])
    port = worker["environment"]["MAILPORT_WORKER_PORT"]
    worker_paths = re.findall(rf"127\.0\.0\.1:{port}(/[a-z]+)", worker_check)
    assert worker_paths and set(worker_paths) <= set(WORKER_ROUTES)


def test_the_compose_secrets_come_from_env_files_not_the_file() -> None:
    services = _compose()["services"]
    for name in ("serve", "worker"):
        assert services[name]["env_file"], name
        inline = services[name].get("environment", {})
        assert not {"MAILPORT_SECRET_KEYS", "MAILPORT_ADMIN_KEY", "MAILPORT_DATABASE_URL"} & inline.keys()
    for env_file in {f for s in services.values() for f in s.get("env_file", [])}:
        assert (DEPLOY / f"{env_file}.example").is_file(), f"deploy/{env_file}.example: the template"
    assert "deploy/*.env" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_dockerfile_is_multi_stage_non_root_and_checks_health() -> None:
    text = DOCKERFILE.read_text()
    joined = re.sub(r"\\\n", " ", text).splitlines()  # continuation lines joined
    lines = [line.strip() for line in joined if not line.lstrip().startswith("#")]
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    assert any(line.startswith("COPY --from=build") and ".whl" in line for line in lines)
    [user] = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user.split(":")[0] not in {"0", "root"}
    [healthcheck] = [line for line in lines if line.startswith("HEALTHCHECK ")]
    assert set(re.findall(r"'(/[a-z]+)'", healthcheck)) <= _routes() and "/healthz" in healthcheck
    [entrypoint] = [line for line in lines if line.startswith("ENTRYPOINT ")]
    assert entrypoint == 'ENTRYPOINT ["mailport"]'
    [cmd] = [line for line in lines if line.startswith("CMD ")]
    assert cmd == 'CMD ["serve"]' and _is_cli_command(["serve"]) and _is_cli_command(["worker"])
    assert any(line.startswith("VOLUME ") for line in lines)
    # no secret is baked in
    for name in ("SECRET_KEYS", "ADMIN_KEY", "DATABASE_URL", "CLIENT_SECRET"):
        assert not any(line.startswith(("ENV ", "ARG ")) and name in line for line in lines), name
    assert not re.search(r"^\s*MAILPORT_[A-Z_]*(KEY|SECRET|DATABASE_URL)", text, re.M)
