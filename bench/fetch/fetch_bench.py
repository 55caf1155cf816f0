"""Fetch + extract throughput against bare ``trafilatura.extract`` on the same pages.

    .venv/bin/python bench/fetch/fetch_bench.py [--corpus ../shared/corpora/aeb] [--rounds 2]

The 181 benchmark pages are served by a local HTTP server in its own process.
"ours" is the fetcher's full path per story (robots.txt check, HTTP GET with
limits, charset detection, trafilatura with metadata, feed fallbacks);
"bare" is ``trafilatura.extract(page_bytes, include_comments=False)`` on the
same bytes already in memory. Both run single-threaded in the same process,
in the same run; the ratio ours/bare of stories per second is the figure that
counts (1.0 = the fetch path costs nothing beyond extraction).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import multiprocessing
import os
import platform
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trafilatura

from ingest.extract import extract_content
from ingest.fetch import PageFetcher
from pipeline.errors import PermanentError
from pipeline.settings import load_settings


def load_pages(corpus: Path) -> dict[str, bytes]:
    return {p.name.removesuffix(".html.gz"): gzip.decompress(p.read_bytes())
            for p in sorted((corpus / "html").glob("*.html.gz"))}


def serve(corpus: Path, port_queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    pages = load_pages(corpus)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = pages.get(self.path.strip("/"))
            status = 200 if body is not None else 404
            body = body if body is not None else b"not found"
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def run_ours(port: int, ids: list[str]) -> tuple[float, int]:
    settings = load_settings({"NEWSWATCH_ALLOW_PRIVATE_NETWORKS": "true",
                              "NEWSWATCH_PER_HOST_DELAY_S": "0"})
    fetcher = PageFetcher(settings)
    ok = 0
    started = time.perf_counter()
    try:
        for page_id in ids:
            fetched = fetcher.fetch(f"http://127.0.0.1:{port}/{page_id}")
            try:
                extract_content(fetched.html, fetched.page.final_url)
                ok += 1
            except PermanentError:
                pass
    finally:
        fetcher.close()
    return time.perf_counter() - started, ok


def run_bare(pages: dict[str, bytes]) -> tuple[float, int]:
    started = time.perf_counter()
    ok = sum(1 for body in pages.values() if trafilatura.extract(body, include_comments=False))
    return time.perf_counter() - started, ok


def main() -> int:
    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path,
                        default=load_settings().shared_dir / "corpora" / "aeb")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not (args.corpus / "html").is_dir():
        print(f"corpus not found at {args.corpus}", file=sys.stderr)
        return 2
    pages = load_pages(args.corpus)
    ports: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(args.corpus, ports), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        rounds = []
        for _ in range(args.rounds):  # alternate, so neither side gets a warmer cache
            bare_s, bare_ok = run_bare(pages)
            ours_s, ours_ok = run_ours(port, list(pages))
            rounds.append({"bare_per_s": round(len(pages) / bare_s, 2),
                           "ours_per_s": round(len(pages) / ours_s, 2),
                           "ratio": round(bare_s / ours_s, 3),
                           "bare_extracted": bare_ok, "ours_extracted": ours_ok})
    finally:
        server.terminate()
        server.join()
    print(json.dumps({"pages": len(pages), "rounds": rounds,
                      "machine": f"{platform.node()}, {os.cpu_count()} cores, "
                                 f"Python {platform.python_version()}"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
