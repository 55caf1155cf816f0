"""The ``newswatch`` command line.

Stage commands (``newswatch run STAGE``) and ``setup`` live here; the user
tools of each package register themselves through their ``COMMANDS`` lists
(``pipeline.dlq``, ``ingest.cli``, ``processors.cli``), so this module stays small.
"""

from __future__ import annotations

import importlib
import sys

import click

from pipeline.logs import configure_logging
from pipeline.settings import Settings, SettingsError, get_settings

# stage name -> "module:function"; each function takes the Settings and runs until stopped
STAGES = {
    "poller": "ingest.poller:run",
    "fetcher": "ingest.fetcher:run",
    "enricher": "processors.enricher:run",
    "indexer": "processors.indexer:run",
    "alerter": "processors.alerter:run",
    # re-publishes the delayed retries (news.retry.N) to their source topics when due
    "retrier": "pipeline.retrier:run",
}


def settings_or_exit() -> Settings:
    """The settings, or a one-line error and exit status 2 (never a traceback)."""
    try:
        return get_settings()
    except SettingsError as exc:
        click.echo(f"newswatch: {exc}", err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default: $LOG_LEVEL or INFO)")
def main(log_level: str | None) -> None:
    """newswatch: feeds -> fetch + extract -> enrichment -> Elasticsearch and alert topics."""
    configure_logging(log_level)


@main.command()
@click.argument("stage", type=click.Choice(sorted(STAGES)))
def run(stage: str) -> None:
    """Run one pipeline stage until SIGTERM/SIGINT."""
    settings = settings_or_exit()
    from pipeline.health import clear_ready
    from pipeline.metrics import serve_metrics

    # A marker left by a killed predecessor (SIGKILL, OOM) would make a restarted container
    # "healthy" before it consumes: compose restarts it in place, with the same /tmp.
    clear_ready(settings, stage)
    try:
        serve_metrics(settings.metrics_port, settings.metrics_addr)
    except OSError as exc:  # the port is taken: say which, rather than a traceback
        click.echo(f"newswatch: cannot serve metrics on {settings.metrics_addr}:"
                   f"{settings.metrics_port}: {exc}", err=True)
        sys.exit(2)
    module_name, func_name = STAGES[stage].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    func(settings)


def _register_package_commands() -> None:
    for module_name in ("pipeline.dlq", "ingest.cli", "processors.cli"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for command in getattr(module, "COMMANDS", []):
            main.add_command(command)


_register_package_commands()
