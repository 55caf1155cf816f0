"""``newswatch alerts``: read alert topics from the terminal."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click


def _line(alert: dict[str, Any]) -> str:
    topics = ", ".join(f"{t.get('name')} {float(t.get('score', 0)):.1f}"
                       for t in alert.get("topics", []))
    head = f"[{alert.get('event', '?')}] {alert.get('published_at') or '?'}  " \
           f"{alert.get('source') or '?'}  {alert.get('title') or '(untitled)'}"
    lines = [head, f"  {alert.get('url')}", f"  topics: {topics}  cluster size: "
             f"{alert.get('cluster_size', 1)}"]
    latest = alert.get("latest")
    if latest:
        lines.append(f"  new copy: {latest.get('source') or '?'}  {latest.get('url')}")
    for tag in alert.get("topics", []):
        for ev in tag.get("evidence", [])[:2]:
            lines.append("  evidence: " + " ".join(str(ev.get("text", "")).split())[:200])
    lines.append(f"  kibana: {alert.get('kibana_url')}")
    return "\n".join(lines)


@click.group("alerts")
def alerts() -> None:
    """Alert subscriptions (deploy/subscriptions) and their topics alerts.<name>."""


@alerts.command("list")
def list_subscriptions() -> None:
    """List the subscriptions and their Kafka topics."""
    from pipeline.cli import settings_or_exit
    from processors.subscriptions import SubscriptionError, load_subscriptions

    settings = settings_or_exit()
    try:
        subs = load_subscriptions(settings.subscriptions_dir)
    except SubscriptionError as exc:
        raise click.ClickException(str(exc)) from None
    for sub in subs:
        hook = "  + webhook" if sub.output.webhook else ""
        click.echo(f"{sub.name}\t{settings.topic(sub.alert_topic)}\ttopics: "
                   f"{', '.join(sub.topics) or '(any)'}{hook}")


@alerts.command("tail")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print each alert as one JSON line.")
@click.option("--max", "max_alerts", type=int, default=None, help="Stop after N alerts.")
@click.option("--timeout", type=float, default=None,
              help="Stop after S seconds without a new alert (default: follow forever).")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest alert kept.")
def tail(name: str, as_json: bool, max_alerts: int | None, timeout: float | None,
         from_beginning: bool) -> None:
    """Follow the alert topic of subscription NAME (alerts.NAME)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    from pipeline.cli import settings_or_exit
    from pipeline.kafka_io import ALERT_PREFIX

    settings = settings_or_exit()
    topic = settings.topic(ALERT_PREFIX + name)
    try:
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                 enable_auto_commit=False, client_id="newswatch-alerts-tail")
        partitions = consumer.partitions_for_topic(topic)
    except KafkaError as exc:
        click.echo(f"newswatch alerts: cannot reach Kafka at {settings.kafka_bootstrap}: {exc}",
                   err=True)
        sys.exit(1)
    if not partitions:
        consumer.close()
        click.echo(f"newswatch alerts: no topic {topic} (is there a subscription named {name!r}?"
                   " `newswatch alerts list`, then `newswatch setup`)", err=True)
        sys.exit(1)
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    if from_beginning:
        consumer.seek_to_beginning(*tps)
    else:
        consumer.seek_to_end(*tps)
    seen = 0
    last = time.monotonic()
    try:
        while max_alerts is None or seen < max_alerts:
            if timeout is not None and time.monotonic() - last > timeout:
                break
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    last = time.monotonic()
                    try:
                        alert = json.loads(record.value)
                    except ValueError:
                        click.echo(f"(unreadable alert at offset {record.offset})", err=True)
                        continue
                    click.echo(json.dumps(alert, ensure_ascii=False) if as_json
                               else _line(alert) + "\n")
                    seen += 1
                    if max_alerts is not None and seen >= max_alerts:
                        break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


COMMANDS: list[click.Command] = [alerts]
