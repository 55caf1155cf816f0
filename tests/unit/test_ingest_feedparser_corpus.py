"""feedparser's own 2,249 test feeds, served over real HTTP, through the poller's path.

Each file is served with the headers its ``Header:`` comments declare (status,
content type, location, encoding), compressed files with their
Content-Encoding, and polled by ``FeedPoller.poll`` exactly as a real feed is.
Every file must end in a named outcome (stories, empty, or an error with a
kind) and none may crash the poller.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

from ingest.feeds import FeedSpec
from ingest.polling import FeedPoller, PollResult
from ingest.transport import new_async_client
from pipeline.settings import load_settings
from tests.support.site import LocalSite, Response

HEADER = re.compile(rb"^Header:\s*([A-Za-z-]+):\s*(.+?)\s*$", re.M)
ENCODINGS = {".gz": "gzip", ".z": "deflate"}
# outcome kinds that mean "our code did not understand what happened"
UNEXPLAINED = {"Exception", "ValueError", "TypeError", "KeyError", "AttributeError",
               "UnicodeDecodeError", "IndexError", "RuntimeError"}


def serve(site: LocalSite, root: Path, path: Path) -> str:
    data = path.read_bytes()
    route = "/" + path.relative_to(root).as_posix()
    status = 200
    headers: dict[str, str] = {}
    for name, value in HEADER.findall(data[:4000]):
        key, text = name.decode(), value.decode("latin-1")
        if key.lower() == "status":
            status = int(text.split()[0])
        else:
            headers[key] = text.replace("http://localhost:8097/tests", site.url(""))
    if path.suffix in ENCODINGS:
        headers["Content-Encoding"] = ENCODINGS[path.suffix]
    headers.setdefault("Content-Type", "application/xml")
    site.add_handler(route, lambda _req, s=status, d=data, h=headers: Response(s, d, h))
    return site.url(route)


async def poll_all(urls: list[str]) -> list[PollResult]:
    settings = load_settings({"NEWSWATCH_ALLOW_PRIVATE_NETWORKS": "true",
                              "NEWSWATCH_PER_HOST_DELAY_S": "0", "NEWSWATCH_POLLER_PER_HOST": "16",
                              "NEWSWATCH_TOTAL_TIMEOUT_S": "10"})
    async with new_async_client() as client:
        poller = FeedPoller(settings, client)
        return await asyncio.gather(*(poller.poll(FeedSpec(url=u), None) for u in urls))


def outcome(result: PollResult) -> str:
    if result.outcome == "error":
        return f"error:{result.state.health.last_error_kind}"
    return "stories" if result.stories else "no_entries"


def test_every_feedparser_case_has_a_named_outcome(shared_dir: Path, site: LocalSite) -> None:
    root = shared_dir / "corpora" / "feedparser-tests"
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "LICENSE")
    assert len(files) > 2000
    site.add_handler("/", lambda _r: Response(404, b""))
    urls = [serve(site, root, p) for p in files]
    results = asyncio.run(poll_all(urls))

    table: dict[str, Counter[str]] = {}
    for path, result in zip(files, results, strict=True):
        category = path.relative_to(root).parts[0]
        table.setdefault(category, Counter())[outcome(result)] += 1
    for category, counts in sorted(table.items()):
        print(f"{category:<12} {sum(counts.values()):>5}  {dict(counts.most_common())}")

    assert sum(sum(c.values()) for c in table.values()) == len(files)
    kinds = {o.split(":", 1)[1] for c in table.values() for o in c if o.startswith("error:")}
    assert not kinds & UNEXPLAINED, kinds
    # well-formed feeds are read: only entries without usable links give no stories
    wellformed = table["wellformed"]
    assert sum(v for k, v in wellformed.items() if k.startswith("error:")) < 0.02 * sum(
        wellformed.values()), wellformed
    # gzip and deflate bodies are decoded (their feeds have no entries); broken ones are named
    assert table["compression"]["no_entries"] == 3
    assert table["compression"]["error:bad_encoding"] == 3
    # redirects are followed to the target; a 302 without Location is named
    assert table["http"]["error:bad_redirect"] == 1
    assert table["http"]["stories"] + table["http"]["no_entries"] >= 6

