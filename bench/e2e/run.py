"""The end-to-end benchmark of issue 11: real pages through every stage, on a fresh native stack.

    make bench-e2e                                   # burst, then steady at 5 stories/s
    .venv/bin/python -m bench.e2e.run --shape burst --machine polyglot
    .venv/bin/python -m bench.e2e.run --shape steady --rate 5 --pages 200

Pages: every page of ``<shared>/corpora/aeb`` and ``news4k`` (``NEWSWATCH_SHARED_DIR``,
default ../shared), each served ``--copies`` times under different URLs from ``--feeds``
RSS feeds on ``--hosts`` loopback hosts. The stack: deploy/local/services.sh with its own
run dir and ports (``NEWSWATCH_LOCAL_RUN_DIR``, default .run/bench-e2e; Kafka
``NEWSWATCH_LOCAL_KAFKA_PORT`` 29092 and 29093, Elasticsearch 29200 and 29300, stage
metrics from 29101: not the ports of ``make up``), wiped and started before the first
run and stopped after the last (``--keep-services`` leaves it running). Results:
``<out>/<date>-<shape>.json`` and ``.md`` (default bench/out/e2e, git-ignored); the
recorded ones are in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.e2e.harness import RunConfig, RunPlaces, Shape, run_benchmark
from bench.e2e.report import markdown
from bench.e2e.site import CORPORA, load_corpus_pages
from pipeline.settings import REPO_ROOT, load_settings

SERVICES_SH = REPO_ROOT / "deploy" / "local" / "services.sh"
# not the defaults of services.sh and stages.sh, so a `make up` stack can keep running
PORTS = {"NEWSWATCH_LOCAL_KAFKA_PORT": "29092", "NEWSWATCH_LOCAL_KAFKA_CONTROLLER_PORT": "29093",
         "NEWSWATCH_LOCAL_ES_PORT": "29200", "NEWSWATCH_LOCAL_ES_TRANSPORT_PORT": "29300"}
METRICS_BASE_PORT = "29101"


class NativeStack:
    """Kafka and Elasticsearch from deploy/local/services.sh, in the benchmark's own run dir."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.env = dict(os.environ) | {"NEWSWATCH_LOCAL_RUN_DIR": str(run_dir)}
        for key, default in PORTS.items():
            self.env.setdefault(key, default)
        self.kafka_bootstrap = f"127.0.0.1:{self.env['NEWSWATCH_LOCAL_KAFKA_PORT']}"
        self.elasticsearch_url = f"http://127.0.0.1:{self.env['NEWSWATCH_LOCAL_ES_PORT']}"

    def services(self, *args: str) -> None:
        subprocess.run(["bash", str(SERVICES_SH), *args], env=self.env, check=True, timeout=900)

    def start_clean(self) -> None:
        self.services("reset")  # stops this run dir's services, wipes their data and logs
        self.services("start", "all")

    def stop(self) -> None:
        self.services("stop", "all")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=("burst", "steady", "both"), default="both")
    parser.add_argument("--rate", type=float, default=5.0, help="steady: stories/s over all feeds")
    parser.add_argument("--pages", type=int, default=None, help="the first N pages only")
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA))
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--feeds", type=int, default=8)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--quiet", type=float, default=60.0,
                        help="seconds without progress that end a run")
    parser.add_argument("--machine", default=None,
                        help="the machine's name in the results (default: the host name)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out" / "e2e")
    parser.add_argument("--keep-services", action="store_true")
    parser.add_argument("--profile", nargs="+", default=[], metavar="STAGE",
                        help="record these stages with py-spy (see --py-spy) during the load")
    parser.add_argument("--py-spy", default=None, help="the py-spy binary (a bench-only venv's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("bench.e2e").setLevel(logging.INFO)

    base_env = {k: v for k, v in os.environ.items() if k.startswith("NEWSWATCH_")}
    shared = load_settings(base_env).shared_dir
    pages = load_corpus_pages(shared, tuple(args.corpora), args.pages)
    if not pages:
        print(f"no pages under {shared}/corpora/{{{','.join(args.corpora)}}}/html "
              "(set NEWSWATCH_SHARED_DIR)", file=sys.stderr)
        return 2
    run_dir = Path(os.environ.get("NEWSWATCH_LOCAL_RUN_DIR") or REPO_ROOT / ".run" / "bench-e2e").resolve()
    stack = NativeStack(run_dir)
    base = load_settings(base_env | {"NEWSWATCH_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
                                     "NEWSWATCH_ELASTICSEARCH_URL": stack.elasticsearch_url})
    metrics_port = int(os.environ.get("NEWSWATCH_LOCAL_METRICS_BASE_PORT", METRICS_BASE_PORT))
    shapes: tuple[Shape, ...] = ("burst", "steady") if args.shape == "both" else (args.shape,)
    args.out.mkdir(parents=True, exist_ok=True)
    stack.start_clean()
    try:
        for shape in shapes:
            config = RunConfig(shape=shape, rate_per_s=args.rate, feeds=args.feeds, hosts=args.hosts,
                               copies=args.copies, quiet_s=args.quiet,
                               profile_stages=tuple(args.profile), py_spy=args.py_spy)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            places = RunPlaces(run_dir / f"stages-{stamp}-{shape}", metrics_port, services_run_dir=run_dir)
            result = run_benchmark(base, pages, config, places, args.machine)
            name = args.out / f"{stamp}-{shape}"
            name.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
            table = markdown(result)
            name.with_suffix(".md").write_text(table)
            print(table)
            print(f"written: {name}.json, {name}.md")
    finally:
        if not args.keep_services:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
