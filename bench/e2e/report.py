"""The Markdown table of one end-to-end result (bench/README.md takes these as they are)."""

from __future__ import annotations

from typing import Any


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(result: dict[str, Any]) -> str:
    m, load, rate = result["machine"], result["load_average"], result["throughput"]
    cfg, pages, counts = result["config"], result["pages"], result["counts"]
    shape = result["shape"] if result["shape"] == "burst" else f"steady, {cfg['rate_per_s']} stories/s"
    dirty = " (uncommitted changes)" if result["dirty"] else ""
    lines = [
        f"### {shape}: {pages['served']} stories ({pages['unique']} pages x {pages['copies']}), "
        f"{pages['feeds']} feeds on {pages['hosts']} hosts",
        "",
        f"Machine `{m['name']}` ({m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}); "
        f"{result['date']}; commit `{result['commit']}`{dirty}; "
        f"load average (1/5/15 min) at start {'/'.join(f'{v:.2f}' for v in load['start'])}, "
        f"during the run mean {load['during_1min_mean']} max {load['during_1min_max']}, "
        f"at the end {'/'.join(f'{v:.2f}' for v in load['end'])}.",
        "",
        "| measure | result |",
        "|---|---|",
        f"| stories indexed / served | {rate['stories_indexed']} / {pages['served']}"
        f"{'' if result['drained'] else ' (**not drained**)'} |",
        f"| end to end, first story indexed to last | **{rate['stories_per_s_first_to_last_indexed']} "
        f"stories/s** ({rate['stories_indexed']} in {rate['first_to_last_indexed_s']} s) |",
        f"| feeds opened to last story searchable | {rate['stories_per_s_start_to_last_searchable']} "
        f"stories/s ({rate['start_to_last_searchable_s']} s) |",
    ]
    for b in result["bare_trafilatura"]:
        lines.append(f"| bare `trafilatura.extract`, same pages, {b['processes']} process"
                     f"{'es' if b['processes'] > 1 else ''} | {b['pages_per_s']} pages/s, "
                     f"{b['cpu_ms_per_page']} ms CPU per page |")
    for name, value in result["ratios"].items():
        lines.append(f"| ratio {name} | **{value}** |")
    cpu = result["cpu_s"]
    per = result["cpu_ms_per_story"]
    parts = ", ".join(f"{k} {v} s ({per[k]} ms)" for k, v in cpu.items()
                      if k in per and k not in ("stages", "total"))
    lines.append(f"| CPU during the run (per story) | {parts}; total {cpu['total']} s "
                 f"({per['total']} ms/story); harness {cpu['harness (HTTP server, watchers)']} s |")
    rss = ", ".join(f"{k} {v} MiB" for k, v in result["peak_rss_mib"].items())
    lines.append(f"| peak RSS (VmHWM) | {rss} |")
    alerts = counts.get("alerts", {})
    events = ", ".join(f"{k} {v}" for k, v in alerts.items() if k != "stories_alerted") or "none"
    lines.append(f"| stories alerted | {alerts.get('stories_alerted', 0)} ({events}) |")
    lost = result["bare_extracted_not_indexed"]
    lines.append(f"| pages bare trafilatura extracts that were not indexed (every copy) | {len(lost)}"
                 f"{': ' + ', '.join(lost[:5]) if lost else ''} |")
    lines += ["", "| latency (s) | n | p50 | p95 | p99 | max |", "|---|---:|---:|---:|---:|---:|"]
    for leg, p in result["latency_s"].items():
        lines.append(f"| {leg} | {p['n']} | {_ms(p['p50'])} | {_ms(p['p95'])} | {_ms(p['p99'])} | "
                     f"{_ms(p['max'])} |")
    stage_counts = ", ".join(
        f"{topic} {c['served_stories']} stories ({c['records']} records)"
        for topic, c in counts.items() if isinstance(c, dict) and "records" in c)
    lines += ["", f"Counts: {stage_counts}; index {counts['indexed']['documents']} documents.", ""]
    return "\n".join(lines)
