"""Poller benchmark: N feeds on a local server, a realistic mix, two rounds.

    .venv/bin/python bench/poller/poller_bench.py [--feeds 10000] [--concurrency 100]

The server runs in its own process (so its CPU is not counted) and answers
``/feed/<i>.xml`` by ``i % 10``: 0-2 changed (a new entry on every request),
3-6 unchanged with an ETag (304 on a conditional GET), 7 unchanged without
validators (200, same body), 8 failing (HTTP 500), 9 an HTML page
(200) instead of a feed. Round 1 is
the cold start (everything new); round 2 is the steady state. For each round:
wall time, feeds/s, and the poller process's CPU time per feed. Kafka is not
involved: this measures the poller's HTTP + parse + schedule path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import platform
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ingest.feeds import FeedSpec
from ingest.polling import FeedPoller
from ingest.state import FeedState
from ingest.transport import new_async_client
from pipeline.settings import load_settings

ENTRIES_PER_FEED = 20


def feed_body(i: int, first: int) -> bytes:
    items = "".join(
        f"<item><title>Story {n} of feed {i}</title><link>http://127.0.0.1/s/{i}/{n}</link>"
        f"<description>Summary of story {n}, with a few words of text.</description>"
        f"<pubDate>Tue, 07 Jan 2025 09:00:00 GMT</pubDate></item>"
        for n in range(first, first + ENTRIES_PER_FEED)
    )
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {i}</title>'
            f"{items}</channel></rss>").encode()


def serve(port_queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    hits: Counter[int] = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            i = int(self.path.rsplit("/", 1)[1].split(".")[0])
            kind = i % 10
            hits[i] += 1
            headers = {"Content-Type": "application/rss+xml"}
            status, body = 200, b""
            if kind <= 2:
                body = feed_body(i, hits[i])  # one new entry per request
            elif kind <= 6:
                if self.headers.get("If-None-Match") == f'"{i}"':
                    status = 304
                else:
                    body = feed_body(i, 0)
                    headers["ETag"] = f'"{i}"'
            elif kind == 7:
                body = feed_body(i, 0)
            elif kind == 8:
                status, body = 500, b"internal error"
            else:
                body = b"<html><body><h1>Maintenance</h1><p>Back soon</body></html>"
            self.send_response(status)
            headers["Content-Length"] = str(len(body))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    port_queue.put(server.server_address[1])
    server.serve_forever()


async def poll_round(poller: FeedPoller, specs: list[FeedSpec],
                     states: dict[str, FeedState]) -> dict[str, object]:
    cpu, wall = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(poller.poll(s, states.get(s.url)) for s in specs))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    outcomes = Counter(r.outcome for r in results)
    for r in results:
        states[r.spec.url] = r.state
    return {"feeds": len(specs), "wall_s": round(wall, 2), "feeds_per_s": round(len(specs) / wall),
            "cpu_ms_per_feed": round(cpu * 1000 / len(specs), 3),
            "stories": sum(len(r.stories) for r in results), "outcomes": dict(outcomes)}


async def bench(port: int, n: int, concurrency: int) -> dict[str, object]:
    settings = load_settings({
        "NEWSWATCH_ALLOW_PRIVATE_NETWORKS": "true", "NEWSWATCH_PER_HOST_DELAY_S": "0",
        "NEWSWATCH_POLLER_CONCURRENCY": str(concurrency),
        # every bench feed is on 127.0.0.1: the per-host cap is the global cap here
        "NEWSWATCH_POLLER_PER_HOST": str(concurrency),
    })
    specs = [FeedSpec(url=f"http://127.0.0.1:{port}/feed/{i}.xml") for i in range(n)]
    states: dict[str, FeedState] = {}
    async with new_async_client(concurrency) as client:
        poller = FeedPoller(settings, client)
        cold = await poll_round(poller, specs, states)
        steady = await poll_round(poller, specs, states)
    return {"cold": cold, "steady": steady}


def main() -> None:
    logging.disable(logging.WARNING)  # one line per failing feed would swamp the report
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    ports: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(ports,), daemon=True)
    server.start()
    try:
        report = asyncio.run(bench(ports.get(timeout=10), args.feeds, args.concurrency))
    finally:
        server.terminate()
        server.join()
    report["machine"] = f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
