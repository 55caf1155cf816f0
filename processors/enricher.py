"""The enricher stage: language, entities, countries, topics, keyphrases, duplicates.

``Enricher`` composes the processors (each a plain function tested on its own)
and is built once per process from the settings; ``run`` is the stage entry
point (``newswatch run enricher``), ``newswatch enrich`` uses the same object.

A story with no text at all is not discarded: it is forwarded with what can be
said from its headline and feed summary (often language, places and topics),
because an analyst who searches for it by title should still find it once.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pipeline.kafka_io import ARTICLES, ENRICHED
from pipeline.settings import Settings
from pipeline.stage import KafkaTopicSink, run_stage
from pipeline.story import Enrichment, Story
from processors.dedup import NearDuplicateIndex
from processors.entities import countries_of, entities_of
from processors.gazetteer import demonym_forms
from processors.keyphrases import extract_keyphrases
from processors.language import detect_language
from processors.text import AnalysedText
from processors.topics import TopicEngine

logger = logging.getLogger(__name__)


class Enricher:
    """``Story -> Story`` with ``story.enrichment`` filled; holds the compiled topics and the dedup window."""

    def __init__(self, topics: TopicEngine, dedup: NearDuplicateIndex | None = None,
                 profile: bool = False) -> None:
        self.topics = topics
        self.dedup = dedup or NearDuplicateIndex()
        self.profile = profile
        self.seconds: dict[str, float] = defaultdict(float)  # per-processor time, when profiling

    @classmethod
    def from_settings(cls, settings: Settings, profile: bool = False) -> Enricher:
        """Load the topic definitions of ``settings.topics_dir`` and the sentence model of their
        checks; a bad file, or a model whose files fail their hash check, fails here, at start."""
        engine = TopicEngine.from_directory(settings.topics_dir, demonym_forms())
        engine.warm_up()
        return cls(engine, profile=profile)

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        if not self.profile:
            yield
            return
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def __call__(self, story: Story) -> Story:
        title = story.title or ""
        text = story.text
        if not text and story.feed and story.feed.summary:
            text = story.feed.summary
        hint = (story.content.language if story.content else None) or (
            story.feed.language if story.feed else None
        )
        story.enrichment = self.enrich_text(story.id, title, text, hint)
        return story

    def enrich_text(self, story_id: str, title: str, text: str, hint: str | None = None) -> Enrichment:
        """Every processor over one headline + body; the stage and the CLI both call this."""
        # tokenised and split into sentences once, for entities and topics alike
        with self._timed("analysis"):
            analysed = AnalysedText.of(title, text)
        with self._timed("language"):
            guess = detect_language(analysed.full, hint)
        with self._timed("entities"):
            entities = entities_of(analysed)
            countries = countries_of(entities)
        with self._timed("topics"):
            topics = self.topics.classify(title, text, guess.language, analysed)
        with self._timed("keyphrases"):
            keyphrases = extract_keyphrases(title, text, language=guess.language)
        with self._timed("dedup"):
            # the body identifies a story; headlines are rewritten by every outlet
            assignment = self.dedup.assign(story_id, text or title)
        return Enrichment(
            language=guess.language,
            language_confidence=guess.confidence,
            entities=entities,
            countries=countries,
            topics=topics,
            keyphrases=keyphrases,
            content_hash=assignment.content_hash,
            cluster_id=assignment.cluster_id,
        )


def build_enricher(settings: Settings) -> Callable[[Story], Story]:
    """The enrich function of the stage, built once from ``settings``."""
    return Enricher.from_settings(settings)


def run(settings: Settings, idle_exit_after: int | None = None) -> None:
    """``newswatch run enricher``: news.articles -> enrichment -> news.enriched, until SIGTERM.

    ``idle_exit_after`` empty polls end the loop (tests and one-shot tools).
    """
    from processors.dedup_state import start_window_sync

    enrich = Enricher.from_settings(settings)
    # the stage's window is sized by settings (bytes and age); tools keep the default
    enrich.dedup = NearDuplicateIndex.from_settings(settings)
    stop_sync = start_window_sync(settings, enrich.dedup)
    try:
        run_stage(
            "enricher", enrich, ARTICLES,
            lambda producer: KafkaTopicSink(producer, settings.topic(ENRICHED)), settings,
            idle_exit_after=idle_exit_after,
        )
    finally:
        stop_sync.set()
