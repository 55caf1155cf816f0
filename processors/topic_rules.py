"""Topic definitions (YAML) and the phrase matcher they compile into.

A topic file follows the shape Europe Media Monitor uses for its categories::

    name: foreign-fighters
    threshold: 10            # tag when the summed weights reach this
    title_weight: 1.5        # a match in the headline counts this many times
    max_per_rule: 3          # occurrences of one rule that count (no keyword stuffing)
    require_any: [serving]   # optional: at least one of these groups must fire
    classes:                 # named word lists, used in patterns as @name
      foreign: {from: demonyms, except: [RU, UA]}
      abroad: {from: countries, except: [RU, UA]}   # country names (pycountry + gazetteer)
      town: {from: places, except: [RU, UA]}        # gazetteer places that lie in a country
      combatant: [fighter*, mercenar*]
    exclude: [firefighter*, fighter jet*]   # masked before matching
    terms: {"foreign fighter*": 10, "@foreign @combatant": 6, "prisoner swap*": -8}
    groups:
      - name: serving
        weight: 8
        within: 12           # words; "sentence" = anywhere in the same sentence
        all: [["@foreign"], ["fight* for", "enlist*"]]
        min_countries: 2     # optional: the first list's sentence names two countries or more
        outside: [RU, UA]    # optional: ... and one of them is not in this list
        supporting: false    # optional: true = adds to other rules' evidence, never tags alone

A pattern is a space-separated word sequence; ``word*`` matches any word that
starts with ``word``; ``@class`` matches any entry of a class (entries may be
several words); ``~N`` (N = 1..5) skips up to N words, so "signed ~3 contract*
with ~3 @army" finds "signed one-year contracts with the Russian army" (a
pattern begins and ends with a word; the shortest occurrence is kept).
Matching is case-insensitive on the tokens of ``processors.text``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from processors.text import Token, normalise_word
from processors.topic_check import MeaningCheck, parse_check

MAX_EXPANSION = 50_000  # patterns one rule may expand into through classes
MAX_CACHED_WORDS = 200_000  # bounded memory for the per-word candidate cache
MAX_GAP = 5  # "~N" skips at most this many words: further apart is a proximity group's job


class TopicDefinitionError(ValueError):
    """A topic file is malformed; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class WordTest:
    text: str
    prefix: bool

    def ok(self, word: str) -> bool:
        return word.startswith(self.text) if self.prefix else word == self.text


@dataclass(frozen=True, slots=True)
class WordSet:
    """One word out of a class's one-word entries: a set lookup instead of one pattern each.

    Without it "@foreign ~2 @person" would expand into every demonym times every person
    noun (tens of thousands of patterns); with it, into one pattern per multi-word entry.
    """

    exact: frozenset[str]
    prefixes: tuple[str, ...]

    def ok(self, word: str) -> bool:
        return word in self.exact or any(word.startswith(p) for p in self.prefixes)


@dataclass(frozen=True, slots=True)
class Gap:
    """``~N`` in a pattern: up to ``most`` words of any kind."""

    most: int


Pattern = tuple[WordTest | WordSet | Gap, ...]


def _match_end(pattern: Pattern, tokens: list[Token], k: int, pos: int) -> int | None:
    """End of the shortest occurrence of ``pattern[k:]`` starting at ``tokens[pos]``."""
    while k < len(pattern):
        test = pattern[k]
        if isinstance(test, Gap):
            for skip in range(test.most + 1):
                end = _match_end(pattern, tokens, k + 1, pos + skip)
                if end is not None:
                    return end
            return None
        if pos >= len(tokens) or not test.ok(tokens[pos].norm):
            return None
        k, pos = k + 1, pos + 1
    return pos


@dataclass(frozen=True, slots=True)
class Hit:
    """One pattern occurrence: which rule, and its token range [start, end)."""

    key: str
    start: int
    end: int


class PhraseMatcher:
    """Finds every occurrence of many word patterns in one pass over the tokens.

    Patterns are bucketed by their first word (exact words in a dict, prefixes by
    their first three letters) so each token is tested against a handful of
    candidates rather than every pattern.
    """

    def __init__(self, patterns: Iterable[tuple[str, Pattern]]) -> None:
        # A pattern shared by several rules (a class used in many groups) is matched once.
        keys_of: dict[Pattern, list[str]] = {}
        for key, pattern in patterns:
            if isinstance(pattern[0], Gap):
                raise ValueError("a pattern cannot begin with a gap")
            keys_of.setdefault(pattern, []).append(key)
        self._exact: dict[str, list[tuple[tuple[str, ...], Pattern]]] = {}
        self._prefix: dict[str, list[tuple[WordTest, tuple[str, ...], Pattern]]] = {}
        for pattern, key_list in keys_of.items():
            keys = tuple(dict.fromkeys(key_list))
            first = pattern[0]
            if isinstance(first, WordSet):
                for word in first.exact:
                    self._exact.setdefault(word, []).append((keys, pattern))
                for stem in first.prefixes:
                    self._prefix.setdefault(stem[:3], []).append(
                        (WordTest(stem, True), keys, pattern))
            elif isinstance(first, WordTest) and first.prefix:
                self._prefix.setdefault(first.text[:3], []).append((first, keys, pattern))
            elif isinstance(first, WordTest):
                self._exact.setdefault(first.text, []).append((keys, pattern))
        # News vocabulary repeats: the patterns a word can start are worked out once per word.
        self._starts: dict[str, _Starts | None] = {}

    def _candidates(self, word: str) -> _Starts | None:
        """The patterns ``word`` can start (None: none), worked out once per word."""
        if word in self._starts:
            return self._starts[word]
        # a dict: a word can start one set pattern both as a word and through a prefix
        unique = dict((pattern, keys) for keys, pattern in self._exact.get(word, ()))
        for length in (1, 2, 3):
            if len(word) >= length:
                unique.update((pattern, keys) for first, keys, pattern in
                              self._prefix.get(word[:length], ()) if first.ok(word))
        found = _Starts.of([(keys, pattern) for pattern, keys in unique.items()]) if unique else None
        if len(self._starts) >= MAX_CACHED_WORDS:
            self._starts.clear()
        self._starts[word] = found
        return found

    def find(self, tokens: list[Token]) -> list[Hit]:
        hits: list[Hit] = []
        seen: set[tuple[str, int, int]] = set()
        starts = self._starts
        for i, tok in enumerate(tokens):
            found = starts[tok.norm] if tok.norm in starts else self._candidates(tok.norm)
            if found is not None:
                _hits_at(found, tokens, i, hits, seen)
        return hits


class MatcherSet:
    """Several matchers run over the same tokens in one pass: ``find`` gives each matcher's hits,
    exactly what its own ``find`` gives, with one look-up per token for all of them (most
    words of a story start no pattern of any matcher)."""

    def __init__(self, matchers: Iterable[PhraseMatcher]) -> None:
        self.matchers = list(matchers)
        self._starts: dict[str, tuple[tuple[int, _Starts], ...]] = {}

    def find(self, tokens: list[Token]) -> list[list[Hit]]:
        hits: list[list[Hit]] = [[] for _ in self.matchers]
        seen: list[set[tuple[str, int, int]]] = [set() for _ in self.matchers]
        starts = self._starts
        for i, tok in enumerate(tokens):
            entry = starts.get(tok.norm)
            if entry is None:
                entry = tuple((m, found) for m, matcher in enumerate(self.matchers)
                              if (found := matcher._candidates(tok.norm)) is not None)
                if len(starts) >= MAX_CACHED_WORDS:
                    starts.clear()
                starts[tok.norm] = entry
            for m, found in entry:
                _hits_at(found, tokens, i, hits[m], seen[m])
        return hits


# a candidate pattern: its order among the word's candidates, its keys, the pattern, its kind
_Candidate = tuple[int, tuple[str, ...], Pattern, int]


@dataclass(frozen=True, slots=True)
class _Starts:
    """The patterns one word can start, numbered in the order hits are reported. Those whose
    second word is fixed (a word, or a set of words without prefixes) are filed under it, so
    only the ones the next token can continue are tried."""

    others: tuple[_Candidate, ...]
    by_second: dict[str, tuple[_Candidate, ...]]

    @classmethod
    def of(cls, patterns: list[tuple[tuple[str, ...], Pattern]]) -> _Starts:
        others: list[_Candidate] = []
        by_second: dict[str, list[_Candidate]] = {}
        for order, (keys, pattern) in enumerate(patterns):
            candidate = (order, keys, pattern, _kind(pattern))
            second = pattern[1] if len(pattern) > 1 else None
            if isinstance(second, WordTest) and not second.prefix:
                by_second.setdefault(second.text, []).append(candidate)
            elif isinstance(second, WordSet) and not second.prefixes:
                for word in second.exact:
                    by_second.setdefault(word, []).append(candidate)
            else:
                others.append(candidate)
        return cls(tuple(others), {w: tuple(c) for w, c in by_second.items()})


def _end(pattern: Pattern, kind: int, tokens: list[Token], i: int, k: int) -> int | None:
    """End of the occurrence of ``pattern`` at ``tokens[i]``, its first ``k`` words known to match."""
    if kind == 1:
        return i + 1
    if kind == 2:
        end = i + len(pattern)
        if end > len(tokens):
            return None
        for j in range(k, len(pattern)):
            if not pattern[j].ok(tokens[i + j].norm):  # type: ignore[union-attr]
                return None
        return end
    return _match_end(pattern, tokens, k, i + k)


def _hits_at(found: _Starts, tokens: list[Token], i: int,
             hits: list[Hit], seen: set[tuple[str, int, int]]) -> None:
    """Append the occurrences of the patterns ``tokens[i]`` can start, in their order."""
    pending: list[tuple[int, tuple[str, ...], int]] = []
    for order, keys, pattern, kind in found.others:
        # the first word is already known to match
        end = _end(pattern, kind, tokens, i, 1)
        if end is not None:
            pending.append((order, keys, end))
    if found.by_second and i + 1 < len(tokens):
        group = found.by_second.get(tokens[i + 1].norm)
        if group:
            for order, keys, pattern, kind in group:
                end = _end(pattern, kind, tokens, i, 2)  # the second word is the one filed under
                if end is not None:
                    pending.append((order, keys, end))
            pending.sort(key=_first)
    for _, keys, end in pending:
        for key in keys:
            if (key, i, end) not in seen:
                seen.add((key, i, end))
                hits.append(Hit(key, i, end))


def _first(item: tuple[int, tuple[str, ...], int]) -> int:
    return item[0]


def _kind(pattern: Pattern) -> int:
    if len(pattern) == 1:
        return 1
    return 0 if any(isinstance(test, Gap) for test in pattern) else 2


@dataclass
class Group:
    """Words from every list must occur within ``within`` words (or one sentence)."""

    name: str
    weight: float
    within: int | None  # None: the same sentence
    lists: list[list[Pattern]]
    # the sentence of the first list's match must name this many distinct countries
    # (places, nationalities, national institutions): "Nepali men ... Russian army" is
    # someone in another country's war, "Sudanese volunteers ... in Gezira" is not
    min_countries: int = 0
    # a supporting group adds to other evidence but never tags a story on its own
    supporting: bool = False
    # one of the sentence's countries must lie outside this set: "Ecuadorian citizens ...
    # a Ukrainian brigade" names a third country, "Ukrainian citizens ... Russia" does not
    outside: frozenset[str] = frozenset()


@dataclass
class TopicDefinition:
    name: str
    threshold: float
    title: str = ""
    description: str = ""
    languages: list[str] = field(default_factory=list)
    title_weight: float = 1.0
    max_per_rule: int = 3
    require_any: list[str] = field(default_factory=list)
    exclude: list[Pattern] = field(default_factory=list)
    terms: dict[str, tuple[float, list[Pattern]]] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    source: str = ""
    # the meaning check a candidate must pass (processors/topic_check.py); None = rules alone
    check: MeaningCheck | None = None
    # not yet at its quality targets on real news: tagged, but left out of default subscriptions
    experimental: bool = False


def _word_test(word: str) -> WordTest | Gap:
    if word.startswith("~") and word[1:].isdigit():
        if not 1 <= int(word[1:]) <= MAX_GAP:
            raise ValueError(f"gap {word!r} must be ~1 to ~{MAX_GAP}")
        return Gap(int(word[1:]))
    if word.endswith("*"):
        stem = normalise_word(word[:-1])
        if len(stem) < 2:
            raise ValueError(f"prefix {word!r} is too short (two letters at least)")
        return WordTest(stem, True)
    return WordTest(normalise_word(word), False)


def compile_pattern(text: str, classes: Mapping[str, list[Pattern]]) -> list[Pattern]:
    """Expand one pattern string (with ``@class`` references) into word-test tuples."""
    slots: list[list[Pattern]] = []
    for word in str(text).split():
        if word.startswith("@"):
            if word[1:] not in classes:
                raise ValueError(f"unknown class {word!r} in {text!r}")
            slots.append(classes[word[1:]])
        else:
            slots.append([(_word_test(word),)])
    if not slots:
        raise ValueError("empty pattern")
    size = 1
    for slot in slots:
        size *= len(slot)
    if size > MAX_EXPANSION:
        raise ValueError(f"pattern {text!r} expands into {size} phrases (max {MAX_EXPANSION})")
    patterns: list[Pattern] = [
        tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*slots)
    ]
    if any(isinstance(p[0], Gap) or isinstance(p[-1], Gap) for p in patterns):
        raise ValueError(f"pattern {text!r} must begin and end with a word, not a gap")
    return patterns


def _as_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return value


@lru_cache(maxsize=1)
def country_names() -> dict[str, str]:
    """Everyday country names -> ISO alpha-2: pycountry plus the gazetteer's country rows."""
    import pycountry  # imported here: only topics with a ``from: countries`` class need it

    names: dict[str, str] = {}
    for country in pycountry.countries:
        for attr in ("name", "common_name"):
            value = getattr(country, attr, None)
            # "Korea, Republic of" style names are catalogue forms, never written in news
            if value and "," not in value and "(" not in value:
                names.setdefault(value, country.alpha_2)
    table = resources.files("processors").joinpath("data", "gazetteer.tsv").read_text("utf-8")
    for line in table.splitlines():
        row = line.split("\t")
        if len(row) > 2 and row[0].strip() == "country" and row[2].strip():
            aliases = row[3].split("|") if len(row) > 3 else []
            for alias in [row[1], *aliases]:
                # upper-case abbreviations ("US", "DRC") read as words once lower-cased
                if alias.strip() and not alias.strip().replace(".", "").isupper():
                    names.setdefault(alias.strip(), row[2].strip().upper())
    return names


@lru_cache(maxsize=1)
def place_names() -> dict[str, str]:
    """Gazetteer places that lie in one country (towns, regions) -> ISO alpha-2."""
    names: dict[str, str] = {}
    table = resources.files("processors").joinpath("data", "gazetteer.tsv").read_text("utf-8")
    for line in table.splitlines():
        row = line.split("\t")
        if len(row) > 2 and row[0].strip() == "place" and row[2].strip():
            aliases = row[3].split("|") if len(row) > 3 else []
            for alias in [row[1], *aliases]:
                if alias.strip() and not alias.strip().replace(".", "").isupper():
                    names.setdefault(alias.strip(), row[2].strip().upper())
    return names


_SOURCES = {"demonyms", "countries", "places"}


def _build_classes(raw: Any, demonyms: Mapping[str, str]) -> dict[str, list[Pattern]]:
    classes: dict[str, list[Pattern]] = {}
    for name, spec in (raw or {}).items():
        if isinstance(spec, dict):
            source = spec.get("from")
            if source not in _SOURCES:
                raise ValueError(f"class {name!r}: 'from' must be one of {sorted(_SOURCES)}")
            excluded = {c.upper() for c in _as_list(spec.get("except", []), "except")}
            table = {"demonyms": demonyms, "countries": country_names(),
                     "places": place_names()}[source]
            words = [d for d, cc in table.items() if cc not in excluded]
            if source == "demonyms" and spec.get("forms") == "plural":
                # "Colombians" names people; the adjective "Colombian" may qualify anything
                words = [w for w in words if w.endswith("s") and w[:-1] in demonyms]
            words += _as_list(spec.get("add", []), "add")
        else:
            words = _as_list(spec, f"class {name!r}")
        # classes may use earlier classes
        classes[name] = _as_sets([p for w in words for p in compile_pattern(w, classes)])
    return classes


def _as_sets(patterns: list[Pattern]) -> list[Pattern]:
    """A class's one-word entries folded into one ``WordSet``; longer entries stay patterns."""
    exact: set[str] = set()
    prefixes: set[str] = set()
    longer: list[Pattern] = []
    for pattern in patterns:
        only = pattern[0] if len(pattern) == 1 else None
        if isinstance(only, WordSet):
            exact |= only.exact
            prefixes.update(only.prefixes)
        elif isinstance(only, WordTest):
            (prefixes.add if only.prefix else exact.add)(only.text)
        else:
            longer.append(pattern)
    if not exact and not prefixes:
        return longer
    return [(WordSet(frozenset(exact), tuple(sorted(prefixes))),), *longer]


def parse_topic(data: Any, source: str, demonyms: Mapping[str, str]) -> TopicDefinition:
    """Validate and compile one topic definition (already parsed from YAML)."""
    try:
        if not isinstance(data, dict):
            raise ValueError("the file must hold a mapping")
        unknown = set(data) - {
            "name", "title", "description", "languages", "threshold", "title_weight",
            "max_per_rule", "require_any", "classes", "exclude", "terms", "groups",
            "check", "experimental",
        }
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        if not data.get("name") or "threshold" not in data:
            raise ValueError("'name' and 'threshold' are required")
        classes = _build_classes(data.get("classes"), demonyms)
        topic = TopicDefinition(
            name=str(data["name"]),
            threshold=float(data["threshold"]),
            title=str(data.get("title", "")),
            description=str(data.get("description", "")).strip(),
            languages=_as_list(data.get("languages", []), "languages"),
            title_weight=float(data.get("title_weight", 1.0)),
            max_per_rule=int(data.get("max_per_rule", 3)),
            require_any=_as_list(data.get("require_any", []), "require_any"),
            source=source,
            check=parse_check(data["check"]) if data.get("check") is not None else None,
            experimental=bool(data.get("experimental", False)),
        )
        if topic.threshold <= 0:
            raise ValueError("threshold must be positive")
        for text in _as_list(data.get("exclude", []), "exclude"):
            topic.exclude.extend(compile_pattern(text, classes))
        for text, weight in (data.get("terms") or {}).items():
            topic.terms[str(text)] = (float(weight), compile_pattern(str(text), classes))
        for i, raw in enumerate(data.get("groups") or []):
            within = raw.get("within", 10)
            lists = raw.get("all")
            if not isinstance(lists, list) or len(lists) < 2:
                raise ValueError(f"group {i}: 'all' needs two or more lists of patterns")
            topic.groups.append(
                Group(
                    name=str(raw.get("name", f"group-{i}")),
                    weight=float(raw.get("weight", 1.0)),
                    within=None if within == "sentence" else int(within),
                    min_countries=int(raw.get("min_countries", 0)),
                    supporting=bool(raw.get("supporting", False)),
                    outside=frozenset(c.upper() for c in _as_list(
                        raw.get("outside", []), f"group {i} outside")),
                    lists=[
                        [p for text in _as_list(lst, f"group {i} list")
                         for p in compile_pattern(text, classes)]
                        for lst in lists
                    ],
                )
            )
        names = {g.name for g in topic.groups}
        missing = [n for n in topic.require_any if n not in names]
        if missing:
            raise ValueError(f"require_any names unknown groups {missing}")
        if not topic.terms and not topic.groups:
            raise ValueError("a topic needs terms or groups")
        return topic
    except (ValueError, TypeError, AttributeError) as exc:
        raise TopicDefinitionError(f"{source}: {exc}") from None


def load_topics(directory: Path, demonyms: Mapping[str, str]) -> list[TopicDefinition]:
    """Every ``*.yaml`` topic in ``directory`` (files starting with ``_`` are skipped)."""
    if not directory.is_dir():
        raise TopicDefinitionError(f"{directory}: topics directory not found")
    topics = []
    for path in sorted(directory.glob("*.y*ml")):
        if path.name.startswith("_"):
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise TopicDefinitionError(f"{path}: invalid YAML: {exc}") from None
        topics.append(parse_topic(data, str(path), demonyms))
    names = [t.name for t in topics]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise TopicDefinitionError(f"{directory}: duplicate topic names {sorted(dupes)}")
    return topics
