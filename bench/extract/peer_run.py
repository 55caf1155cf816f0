"""Run one peer extractor over a corpus, inside that peer's own venv (stdlib + the peer).

    bench/extract/peers/<peer>/.venv/bin/python bench/extract/peer_run.py PEER PAGES.json OUT.json

Writes {page_id: {"text", "title", "authors", "date", "error"}} plus "_meta" (peer
version, CPU seconds). PAGES.json maps page id to HTML text, decoded once by
bench/extract/peers.py with the pipeline's own ``decode_html``. Every peer gets the page
HTML alone and the same placeholder
URL (none of them is given the real one, as for bare trafilatura and ours), so
the metadata comes from the page only.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

URL = "https://news.example/story"


def newspaper4k(html: str) -> dict[str, Any]:
    from newspaper import Article

    article = Article(URL, fetch_images=False)
    article.download(input_html=html)
    article.parse()
    day = article.publish_date.date().isoformat() if article.publish_date else None
    return {"text": article.text, "title": article.title, "authors": ", ".join(article.authors),
            "date": day}


def news_please(html: str) -> dict[str, Any]:
    from newsplease import NewsPlease

    article = NewsPlease.from_html(html, url=URL, fetch_images=False)
    day = article.date_publish.date().isoformat() if article.date_publish else None
    return {"text": article.maintext or "", "title": article.title,
            "authors": ", ".join(article.authors or []), "date": day}


def mcmetadata(html: str) -> dict[str, Any]:
    from mcmetadata import extract

    result = extract(URL, html_text=html)
    published = result.get("publication_date")
    return {"text": result.get("text_content") or "", "title": result.get("article_title"),
            "authors": ", ".join(result.get("authors") or []),
            "date": published.date().isoformat() if published else None}


PEERS = {"newspaper4k": (newspaper4k, "newspaper4k"), "news-please": (news_please, "news-please"),
         "mcmetadata": (mcmetadata, "mediacloud-metadata")}


def main() -> int:
    name, pages_file, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    run, package = PEERS[name]
    pages: dict[str, str] = json.loads(pages_file.read_text(encoding="utf-8"))
    results: dict[str, Any] = {}
    cpu = 0.0
    for page_id, html in pages.items():
        started = time.process_time()
        try:
            results[page_id] = run(html)
        except Exception as exc:  # a peer's crash on one page is that page's empty result
            results[page_id] = {"text": "", "error": repr(exc)[:200]}
        cpu += time.process_time() - started
    results["_meta"] = {"version": version(package), "cpu_s": cpu, "pages": len(results)}
    out.write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
