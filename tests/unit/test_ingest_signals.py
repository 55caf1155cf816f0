"""News signals (JSON-LD, meta tags, <time>, bylines) and the choice between them,
on small pages written for the test."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ingest.choose import choose_authors, choose_date, choose_title, parse_date
from ingest.extract import Choices, article_text, extract_content, parse_html
from ingest.signals import Signals, page_signals, split_authors
from pipeline.story import FeedEntry

PARAGRAPHS = "".join(
    f"<p>Paragraph {i} of the story says that the council met on Tuesday evening and voted "
    f"on the budget for the coming year, after a long debate about the new library.</p>"
    for i in range(6)
)


def page(head: str = "", body: str = "", article: str = PARAGRAPHS) -> str:
    return (f"<!DOCTYPE html><html lang='en-GB'><head><meta charset='utf-8'><title>Council"
            f" votes budget | The Town Crier</title>{head}</head><body><header><a href='/'>Home"
            f"</a></header>{body}<article>{article}</article><footer>Contact us</footer>"
            "</body></html>")


def jsonld(obj: object) -> str:
    return f'<script type="application/ld+json">{json.dumps(obj)}</script>'


def signals_of(html: str) -> Signals:
    tree = parse_html(html)
    assert tree is not None
    return page_signals(tree, walk=True)


def test_jsonld_news_article_gives_headline_date_authors_body() -> None:
    html = page(head=jsonld({"@context": "https://schema.org", "@graph": [
        {"@type": "WebSite", "name": "The Town Crier"},
        {"@type": ["NewsArticle"], "headline": "Council votes &#8216;lean&#8217; budget",
         "datePublished": "2024-03-05T18:40:00+01:00",
         "author": [{"@type": "Person", "name": "Ana Lopez"}, {"@type": "Person", "name": "Li Wei"},
                    {"@type": "Organization", "name": "Town Crier Staff"}],
         "articleBody": "The council voted."}]}))
    signals = signals_of(html)
    assert signals.first("title", "jsonld") == "Council votes \u2018lean\u2019 budget"
    assert signals.first("date", "jsonld") == "2024-03-05T18:40:00+01:00"
    # the Organization is the outlet, not a person
    assert signals.first("authors", "jsonld") == ["Ana Lopez", "Li Wei"]
    assert signals.first("body", "jsonld") == "The council voted."
    assert ("jsonld", "The Town Crier") in signals.site_name


def test_broken_and_non_article_jsonld_is_ignored() -> None:
    html = page(head='<script type="application/ld+json">{"@type": "NewsArticle", oops</script>'
                + jsonld({"@type": "Product", "name": "A kettle", "datePublished": "2020-01-01"}))
    signals = signals_of(html)
    assert signals.first("title", "jsonld") is None and signals.first("date", "jsonld") is None


def test_jsonld_with_raw_newlines_in_strings_is_read() -> None:
    raw = '{"@type": "Article", "headline": "Two\nlines", "datePublished": "2024-01-02"}'
    signals = signals_of(page(head=f'<script type="application/ld+json">{raw}</script>'))
    assert signals.first("title", "jsonld") == "Two lines"


def test_open_graph_and_article_meta_tags() -> None:
    html = page(head='<meta property="og:title" content="Council votes budget">'
                     '<meta property="article:published_time" content="2024-03-05T08:00:00Z">'
                     '<meta name="author" content="By Jo Bloggs and Sam Smith">'
                     '<meta property="og:site_name" content="The Town Crier">')
    signals = signals_of(html)
    assert signals.first("title", "og:title") == "Council votes budget"
    assert signals.first("date", "meta") == "2024-03-05T08:00:00Z"
    assert signals.first("authors", "meta") == ["Jo Bloggs", "Sam Smith"]


def test_time_datetime_and_microdata() -> None:
    html = page(article='<time datetime="2024-03-04">Monday</time>'
                        '<span itemprop="author" itemscope><span itemprop="name">Kim Park</span>'
                        '</span><meta itemprop="datePublished" content="2024-03-03">' + PARAGRAPHS)
    signals = signals_of(html)
    assert signals.first("date", "time") == "2024-03-04"
    assert signals.first("date", "microdata") == "2024-03-03"
    assert signals.first("authors", "microdata") == ["Kim Park"]


def test_byline_markup_and_rel_author() -> None:
    html = page(article='<p class="article-byline">By Maria Rossi | Updated 5 March 2024</p>'
                        '<a rel="author" href="/staff/tom">View all posts by Tom Brown</a>'
                        + PARAGRAPHS)
    signals = signals_of(html)
    assert signals.first("authors", "byline") == ["Maria Rossi"]
    assert signals.first("authors", "rel-author") == ["Tom Brown"]


@pytest.mark.parametrize(("byline", "names"), [
    ("By Jane Doe and John Roe", ["Jane Doe", "John Roe"]),
    ("Jane Doe, John Roe & Ann Lee", ["Jane Doe", "John Roe", "Ann Lee"]),
    ("Reuters staff", []),
    ("https://example.org/authors/jane", []),
    ("By Jane Doe Dec 24, 2023 10:00", ["Jane Doe"]),
    ("Jane Doe, Ann Lee, +55 more", ["Jane Doe", "Ann Lee"]),
    ("Sam Roe, Chief Technology Officer", ["Sam Roe"]),
])
def test_split_authors(byline: str, names: list[str]) -> None:
    assert split_authors(byline) == names


def test_title_prefers_the_h1_and_drops_the_site_name_elsewhere() -> None:
    confirmed = signals_of(page(head='<meta property="og:title" content="Council votes budget |'
                                     ' The Town Crier"><meta property="og:site_name" '
                                     'content="The Town Crier">',
                                body="<h1>Council votes budget</h1>"))
    assert choose_title(confirmed) == ("Council votes budget", "h1")
    # an <h1> that is the site's logo is not the headline; og:title loses the site suffix
    logo = signals_of(page(head='<meta property="og:title" content="Council votes budget |'
                                ' The Town Crier"><meta property="og:site_name" '
                                'content="The Town Crier">', body="<h1>The Town Crier</h1>"))
    assert choose_title(logo) == ("Council votes budget", "og:title")


def test_date_order_is_the_measured_one_not_page_order() -> None:
    # <time> comes first in the page, JSON-LD last: JSON-LD wins (DATE_ORDER)
    html = page(article='<time datetime="2023-12-31">related</time>' + PARAGRAPHS,
                body="", head="") .replace(
        "</body>", jsonld({"@type": "NewsArticle", "datePublished": "2024-03-05"}) + "</body>")
    value, source = choose_date(signals_of(html))
    assert source == "jsonld" and value == datetime(2024, 3, 5, tzinfo=UTC)


def test_authors_skip_the_outlet_name() -> None:
    html = page(head='<meta property="og:site_name" content="USA Today">'
                     '<meta name="author" content="USA TODAY">'
                     '<a rel="author" href="/p">Pat Lee</a>')
    assert choose_authors(signals_of(html)) == (["Pat Lee"], "rel-author")


@pytest.mark.parametrize(("site", "byline", "expected"), [
    # the outlet's name run on after the person's, as markup without separators reads
    ("USA TODAY", "Elizabeth Flores USA TODAY", ["Elizabeth Flores"]),
    ("USA TODAY", "Craig Meyer USA TODAY NETWORK", ["Craig Meyer"]),
    # the parts of a site name the author splitter cuts at "&"
    ("The Worcester Telegram &amp; Gazette", "Sarah Barnacle Worcester Telegram &amp; Gazette",
     ["Sarah Barnacle"]),
    # a role or a credential after the name
    ("Eurogamer.net", "Rick Lane Contributor", ["Rick Lane"]),
    ("Health Daily", "Lauren Manaker MS, RDN, LD", ["Lauren Manaker"]),
    # "Executive Content Editor" is somebody's byline: "editor" is not cut
    ("Health Daily", "Executive Content Editor", ["Executive Content Editor"]),
    # an agency credited beside a reporter is dropped; alone it is the byline
    ("The Daily", "Minyvonne Burke, The Associated Press", ["Minyvonne Burke"]),
    ("The Daily", "Associated Press", ["Associated Press"]),
])
def test_authors_lose_the_outlet_roles_and_agencies_around_the_names(
    site: str, byline: str, expected: list[str],
) -> None:
    html = page(head=f'<meta property="og:site_name" content="{site}">',
                article=f'<div class="byline">{byline}</div>' + PARAGRAPHS)
    assert choose_authors(signals_of(html)) == (expected, "byline")


def test_an_agency_on_its_own_site_is_the_outlet_not_an_author() -> None:
    html = page(head='<meta property="og:site_name" content="Reuters">',
                article='<div class="byline">Reuters</div>' + PARAGRAPHS)
    assert choose_authors(signals_of(html)) == ([], None)


def test_links_to_author_pages_name_the_author_when_nothing_else_does() -> None:
    html = page(article='<p><a href="/writer/1207921/Charles__Fried/">Charles Fried</a>, '
                        'Contributing Opinion Writer</p>' + PARAGRAPHS
                + '<aside><a href="/author/someone-else">Someone Else</a></aside>')
    signals = signals_of(html)
    assert signals.first("authors", "author-link") == ["Charles Fried"]
    assert choose_authors(signals) == (["Charles Fried"], "author-link")
    # a byline, when there is one, comes first
    html = page(article='<div class="AuthorName-x1">Ann Lee</div>'
                        '<a href="/authors/bob">Bob Ray</a>' + PARAGRAPHS)
    assert choose_authors(signals_of(html)) == (["Ann Lee"], "byline")


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-03-05T23:30:00-05:00", datetime(2024, 3, 5, 23, 30, tzinfo=timezone(timedelta(hours=-5)))),
    ("2024-03-05T23:30:00.000Z", datetime(2024, 3, 5, 23, 30, tzinfo=UTC)),
    ("2024-03-05 23:30:00", datetime(2024, 3, 5, 23, 30, tzinfo=UTC)),
    ("Tue, 05 Mar 2024 23:30:00 GMT", datetime(2024, 3, 5, 23, 30, tzinfo=UTC)),
    ("03/05/2024 23:30", datetime(2024, 3, 5, tzinfo=UTC)),
    ("yesterday", None),
    ("2024-13-45", None),
])
def test_parse_date_keeps_the_day_as_written(raw: str, expected: datetime | None) -> None:
    assert parse_date(raw) == expected


def test_extract_content_records_each_fields_signal() -> None:
    html = page(head=jsonld({"@type": "NewsArticle", "headline": "Council votes budget",
                             "datePublished": "2024-03-05T18:40:00+01:00",
                             "author": {"@type": "Person", "name": "Ana Lopez"}})
                + '<meta property="og:site_name" content="The Town Crier">',
                body="<h1>Council votes budget</h1>")
    content = extract_content(html, "https://crier.example/budget")
    assert content.title == "Council votes budget" and content.page_signals["title"] == "h1"
    assert content.author == "Ana Lopez" and content.page_signals["author"] == "jsonld"
    assert content.published_at is not None and content.published_at.day == 5
    assert content.page_signals["published_at"] == "jsonld"
    assert content.site_name == "The Town Crier" and content.language == "en"
    assert content.sources["title"] == content.sources["author"] == "page"
    assert "voted on the budget" in content.text


def test_feed_date_of_the_same_day_gives_the_time() -> None:
    html = page(head=jsonld({"@type": "NewsArticle", "datePublished": "2024-03-05"}))
    feed_time = datetime(2024, 3, 5, 17, 40, tzinfo=UTC)
    content = extract_content(html, None, FeedEntry(feed_url="http://f/rss", link="http://f/a",
                                                     published_at=feed_time))
    assert content.published_at == feed_time and content.sources["published_at"] == "feed"


def test_jsonld_body_replaces_text_from_another_block() -> None:
    story = " ".join(f"The mayor announced plan number {i} for the river district today."
                     for i in range(30))
    other = "".join(f"<p>Unrelated listing entry {i} about kitchen furniture on sale this week "
                    f"at very low prices, order now while stocks last.</p>" for i in range(8))
    html = page(head=jsonld({"@type": "NewsArticle", "articleBody": story}), article=other)
    assert article_text(html).startswith("The mayor announced plan number 0")
    assert "kitchen furniture" in article_text(html, choices=Choices(jsonld_body=False))
    # a teaser (short articleBody) never replaces the extracted text
    teaser = page(head=jsonld({"@type": "NewsArticle", "articleBody": story[:300]}), article=other)
    assert "kitchen furniture" in article_text(teaser)


def test_jsonld_body_that_agrees_with_the_text_changes_nothing() -> None:
    text = article_text(page())
    html = page(head=jsonld({"@type": "NewsArticle", "articleBody": text + " Extra sentence."}))
    assert article_text(html) == text


def test_headline_line_is_not_body_text() -> None:
    html = page(head='<meta property="og:title" content="Council votes budget">',
                article="<h1>Council votes budget</h1>" + PARAGRAPHS)
    assert article_text(html).startswith("Paragraph 0 of the story")
    assert article_text(html, choices=Choices(drop_headline=False)).startswith("Council votes")
