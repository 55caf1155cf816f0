"""The compose `setup` service: users, Kafka topics, index template, Kibana saved objects.

Runs once per `docker compose up` (and again by hand after changing topics,
subscriptions, the template or the Kibana objects); every step is idempotent.

Environment (set by docker-compose.yml): ELASTIC_PASSWORD, KIBANA_PASSWORD,
KIBANA_INTERNAL_URL, KIBANA_OBJECTS_DIR (a directory of *.ndjson) and the
NEWSWATCH_* settings of the stages (the `newswatch` user's password among them).
deploy/compose/override.native.yml (no Docker engine: native Kafka and Elasticsearch,
no Kibana) sets SETUP_ELASTICSEARCH_SECURITY=false (a node without security has no
users to make) and KIBANA_INTERNAL_URL="" (no saved objects to import); setup says so.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import httpx

logger = logging.getLogger("newswatch.compose.setup")

ROLE = "newswatch_pipeline"
WAIT_S = 600.0


def es_security(es_url: str, auth: tuple[str, str], *, kibana_password: str,
                user_password: str, index_patterns: list[str]) -> list[str]:
    """Set kibana_system's password; create the pipeline role and the `newswatch` user."""
    lines = []
    with httpx.Client(base_url=es_url, auth=auth, timeout=30) as es:
        r = es.post("/_security/user/kibana_system/_password", json={"password": kibana_password})
        r.raise_for_status()
        lines.append("kibana_system password set")
        role = {
            "cluster": ["monitor", "manage_index_templates"],
            "indices": [{"names": index_patterns, "privileges": ["all"]}],
        }
        es.put(f"/_security/role/{ROLE}", json=role).raise_for_status()
        lines.append(f"role {ROLE} on {', '.join(index_patterns)}")
        user = {"password": user_password, "roles": [ROLE], "full_name": "newswatch stages"}
        es.put("/_security/user/newswatch", json=user).raise_for_status()
        lines.append("user newswatch ready")
    return lines


def wait_for_kibana(kibana_url: str, auth: tuple[str, str], timeout_s: float = WAIT_S) -> None:
    """Wait until Kibana answers its status API as available."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{kibana_url}/api/status", auth=auth, timeout=10)
            if r.status_code == 200 and \
                    r.json().get("status", {}).get("overall", {}).get("level") == "available":
                return
            last = f"HTTP {r.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            last = str(exc)
        time.sleep(5)
    raise RuntimeError(f"Kibana at {kibana_url} not available after {timeout_s:.0f}s: {last}")


def import_saved_objects(kibana_url: str, auth: tuple[str, str], directory: Path) -> list[str]:
    """POST each NDJSON file to the saved-objects import API with overwrite=true (idempotent)."""
    lines = []
    for path in sorted(directory.glob("*.ndjson")):
        r = httpx.post(
            f"{kibana_url}/api/saved_objects/_import", params={"overwrite": "true"},
            headers={"kbn-xsrf": "newswatch-setup"}, auth=auth, timeout=60,
            files={"file": (path.name, path.read_bytes(), "application/ndjson")},
        )
        if r.status_code != 200:
            raise RuntimeError(f"import of {path.name} failed: HTTP {r.status_code}: {r.text[:500]}")
        result = r.json()
        if not result.get("success"):
            raise RuntimeError(f"import of {path.name} reported errors: {result.get('errors')}")
        lines.append(f"kibana: {path.name}: {result.get('successCount', 0)} objects")
    return lines


SECRETS = {
    "ELASTIC_PASSWORD": 1,
    "KIBANA_PASSWORD": 1,
    "KIBANA_ENCRYPTION_KEY": 32,  # Kibana refuses shorter keys
    "NEWSWATCH_ELASTICSEARCH_PASSWORD": 1,
}


def missing_secrets(environ: dict[str, str]) -> list[str]:
    """The secrets that .env must set and does not (or sets too short)."""
    return [
        f"{name} (at least {length} characters)" if length > 1 else name
        for name, length in SECRETS.items()
        if len(environ.get(name, "")) < length
    ]


def main() -> int:
    """Run every step; exit status 1 with a one-line reason on failure."""
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    missing = missing_secrets(dict(os.environ))
    if missing:
        raise RuntimeError(
            f"set {', '.join(missing)} in .env (cp .env.example .env), then docker compose up -d"
        )
    from pipeline.settings import load_settings
    from processors.stack_setup import bootstrap

    elastic = ("elastic", os.environ["ELASTIC_PASSWORD"])
    stage_settings = load_settings()
    # setup itself works as the superuser; the stages use the `newswatch` user made here
    env = {k: v for k, v in os.environ.items() if k.startswith("NEWSWATCH_")}
    env.update({"NEWSWATCH_ELASTICSEARCH_USERNAME": "elastic",
                "NEWSWATCH_ELASTICSEARCH_PASSWORD": elastic[1]})
    admin = load_settings(env)
    alias = stage_settings.index_alias
    if os.environ.get("SETUP_ELASTICSEARCH_SECURITY", "true").lower() == "false":
        steps = ["elasticsearch security off: no users or roles created"]
    else:
        steps = es_security(
            admin.elasticsearch_url, elastic, kibana_password=os.environ["KIBANA_PASSWORD"],
            user_password=stage_settings.elasticsearch_password or "",
            index_patterns=[f"{alias}*", f"{alias.removesuffix('-stories')}-feed-health*"],
        )
    steps += list(bootstrap(admin))
    objects = Path(os.environ.get("KIBANA_OBJECTS_DIR", "/app/deploy/kibana"))
    kibana = os.environ.get("KIBANA_INTERNAL_URL", "http://kibana:5601")
    if kibana:
        wait_for_kibana(kibana, elastic)
        steps += import_saved_objects(kibana, elastic, objects)
    else:
        steps.append("kibana: none (KIBANA_INTERNAL_URL empty), saved objects not imported")
    for line in steps:
        print(f"setup: {line}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # one readable line for `docker compose logs setup`
        print(f"setup failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
