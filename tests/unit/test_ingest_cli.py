"""``newswatch feeds import|export|check`` and ``newswatch extract`` as a user runs them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import main
from pipeline.settings import get_settings
from tests.support.site import LocalSite
from tests.unit.test_ingest_fetch import article

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Local Wire</title>
<item><title>First</title><link>{base}/a</link><pubDate>Tue, 07 Jan 2025 09:00:00 GMT</pubDate></item>
<item><title>Undated</title><link>{base}/b</link></item>
<item><title>Linkless</title></item></channel></rss>"""


Invoke = Callable[..., Result]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Invoke]:
    monkeypatch.setenv("NEWSWATCH_ALLOW_PRIVATE_NETWORKS", "true")
    monkeypatch.setenv("NEWSWATCH_PER_HOST_DELAY_S", "0")
    monkeypatch.setenv("NEWSWATCH_FEEDS", str(tmp_path / "feeds.yaml"))
    get_settings.cache_clear()

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def test_check_url_prints_entries_and_problems(site: LocalSite, run: Invoke) -> None:
    site.add("/rss", RSS.format(base=site.url("")), content_type="application/rss+xml",
             headers={"ETag": '"e1"'})
    result = run("feeds", "check", site.url("/rss"))
    assert result.exit_code == 0, result.output
    assert "Local Wire  [rss20]  2 entries" in result.output
    assert "etag: \"e1\"" in result.output
    assert f"{site.url('/a')}" in result.output
    assert "problem: entry 3 has no usable link" in result.output
    assert f"problem: entry 2 ({site.url('/b')}) has no date" in result.output


def test_check_failures_are_one_line(site: LocalSite, run: Invoke, tmp_path: Path) -> None:
    site.add("/page", "<html><body>hello</body></html>")
    cases = [site.url("/page"), site.url("/missing"), "ftp://x.org/feed", "http://127.0.0.1:9/"]
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02 not xml")
    for target in [*cases, str(junk)]:
        result = CliRunner().invoke(main, ["feeds", "check", target])
        assert result.exit_code != 0, target
        assert result.exception is None or isinstance(result.exception, SystemExit)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("newswatch: "), result.output


def test_import_and_export_opml(run: Invoke, tmp_path: Path) -> None:
    opml = tmp_path / "reader.opml"
    opml.write_text(
        '<opml version="2.0"><body><outline text="News">'
        '<outline text="A" xmlUrl="https://a.example.org/rss"/>'
        '<outline text="Bad" xmlUrl="mailto:x@y"/></outline></body></opml>', encoding="utf-8")
    result = run("feeds", "import", str(opml))
    assert result.exit_code == 0
    assert "imported 1 new feed(s) of 1" in result.output
    assert "reader.opml: line 1: url: not an absolute http(s) URL" in result.output
    again = run("feeds", "import", str(opml))
    assert "imported 0 new feed(s)" in again.output
    exported = run("feeds", "export", "--format", "opml")
    assert 'xmlUrl="https://a.example.org/rss"' in exported.output
    assert 'category="News"' in exported.output


def test_extract_files_and_urls_one_json_line_each(site: LocalSite, run: Invoke, tmp_path: Path) -> None:
    saved = tmp_path / "page.html"
    saved.write_text(article(), encoding="utf-8")
    site.add("/a", article(title="Served page"))
    site.add("/empty", "<html><body><nav>Home</nav></body></html>")
    result = run("extract", str(saved), site.url("/a"), site.url("/empty"))
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["ok"] for line in lines] == [True, True, False]
    assert lines[0]["title"] == "Two detained after crossing the line"
    assert lines[0]["sources"]["title"] == "page" and "foreign nationals" in lines[0]["text"]
    assert lines[1]["title"] == "Served page" and lines[1]["final_url"] == site.url("/a")
    assert lines[2]["error"] == f"no article text extracted from {site.url('/empty')}"


def test_extract_reports_a_failing_page_and_goes_on(run: Invoke, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.extract

    mis_declared = tmp_path / "base64.html"
    mis_declared.write_bytes(article().replace('<meta charset="utf-8">', '<meta charset="base64">')
                             .encode("utf-8"))
    crashing = tmp_path / "crash.html"
    crashing.write_text(article(title="Crashes the extractor"), encoding="utf-8")
    good = tmp_path / "good.html"
    good.write_text(article(), encoding="utf-8")
    real = ingest.extract.extract_content

    def flaky(html: str, url: str | None = None, feed: object = None) -> object:
        if "Crashes the extractor" in html:
            raise RuntimeError("parser bug")
        return real(html, url)

    monkeypatch.setattr(ingest.extract, "extract_content", flaky)
    result = run("extract", str(mis_declared), str(crashing), str(good))
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["ok"] for line in lines] == [True, False, True]
    assert lines[0]["charset"] != "base64" and "foreign nationals" in lines[0]["text"]
    assert lines[1]["error_kind"] == "extraction_error" and "parser bug" in lines[1]["error"]
    assert "1 of 3 page(s) could not be extracted" in result.stderr
