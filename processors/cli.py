"""Commands of the processors package, registered on the ``newswatch`` group."""

from __future__ import annotations

import importlib

import click

COMMANDS: list[click.Command] = []

# enrich (processors.cli_enrich), search (processors.cli_search), alerts (processors.cli_alerts),
# setup (processors.stack_setup)
for _name in ("processors.cli_enrich", "processors.cli_search", "processors.cli_alerts",
              "processors.stack_setup"):
    COMMANDS.extend(importlib.import_module(_name).COMMANDS)
