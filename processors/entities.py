"""Entities (people, organisations, places, nationalities) by gazetteer and rules.

Known names come from the gazetteer (``processors.gazetteer``): every alias
maps to one normalised entry, so "Zelensky", "Zelenskyy" and "Volodymyr
Zelensky" are one person, "North Korean soldiers" is the nationality KP, and
every place carries its ISO 3166 alpha-2 code. Unknown people and
organisations are found by rules (a title before a capitalised name, a name
before "said", a capitalised run containing "Ministry", "Brigade", ...), and
a later surname-only mention merges into the full name seen earlier.
The comparison with a statistical model is in processors/README.md.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from pipeline.story import Entity
from processors.gazetteer import Alias, Entry, aliases, entity_rules
from processors.text import AnalysedText, Token, tokenize
from processors.topic_rules import Hit, PhraseMatcher

_ORDINAL = re.compile(r"\d+(st|nd|rd|th)")


@dataclass
class _Found:
    entry: Entry
    start: int  # token index of the first mention
    mentions: int = 1
    surfaces: set[str] = field(default_factory=set)


@lru_cache(maxsize=1)
def _matcher() -> tuple[PhraseMatcher, list[Alias]]:
    table = aliases()
    return PhraseMatcher((str(i), a.pattern) for i, a in enumerate(table)), table


def _capitalised(word: str) -> bool:
    return word[:1].isupper()


def _strip_possessive(word: str) -> str:
    return word[:-2] if word.endswith(("'s", "\u2019s")) else word


def _surface(text: str, tokens: list[Token], start: int, end: int) -> str:
    return text[tokens[start].start : tokens[end - 1].end]


_name_keys: dict[str, str] = {}
MAX_CACHED_NAMES = 100_000


def name_key(name: str) -> str:
    """A spelling-tolerant key for a name: no accents, no doubled letters, -iy/-yy/-yi -> -y."""
    key = _name_keys.get(name)
    if key is None:
        key = _name_key(name)
        if len(_name_keys) >= MAX_CACHED_NAMES:
            _name_keys.clear()
        _name_keys[name] = key
    return key


def _name_key(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(c for c in plain if c.isalnum() or c == " ")
    out = []
    for word in plain.split():
        for ending in ("iy", "yy", "yi", "ii", "ij"):
            if word.endswith(ending):
                word = word[: -len(ending)] + "y"
        dedup = "".join(c for i, c in enumerate(word) if i == 0 or c != word[i - 1])
        out.append(dedup)
    return " ".join(out)


def gazetteer_matches(analysed: AnalysedText) -> list[Hit]:
    """The gazetteer's raw matches in ``analysed.full_tokens``, found once per story (entities
    and the topic rules' country counts both read them)."""
    found = analysed.cache.get("gazetteer")
    if found is None:
        found = analysed.cache["gazetteer"] = _matcher()[0].find(analysed.full_tokens)
    return found  # type: ignore[return-value]


def _gazetteer_hits(text: str, tokens: list[Token],
                    raw: list[Hit] | None = None) -> list[tuple[int, int, Entry]]:
    """Accepted gazetteer names of ``tokens``; ``raw`` = the matcher's hits, if already found."""
    matcher, table = _matcher()
    accepted = []
    for hit in matcher.find(tokens) if raw is None else raw:
        alias = table[int(hit.key)]
        words = [text[tokens[i].start : tokens[i].end] for i in range(hit.start, hit.end)]
        if alias.acronym:
            # "IS" is the Islamic State, "is" is a verb: acronyms must match letter for letter
            if [_strip_possessive(w) for w in words] != list(alias.words):
                continue
        elif not all(_capitalised(w) or not cap for w, cap in zip(words, alias.capitals, strict=True)):
            continue
        accepted.append((hit.start, hit.end, alias.entry))
    # longest match wins ("Russian Volunteer Corps" over "Russian"), then the earliest
    accepted.sort(key=lambda h: (-(h[1] - h[0]), h[0]))
    taken: set[int] = set()
    chosen = []
    for start, end, entry in accepted:
        if taken.isdisjoint(range(start, end)):
            taken.update(range(start, end))
            chosen.append((start, end, entry))
    return sorted(chosen, key=lambda h: h[0])


def _capital_run(text: str, tokens: list[Token], i: int, taken: set[int]) -> int:
    """End (exclusive) of the capitalised name starting at token ``i`` (connectors allowed inside)."""
    rules = entity_rules()
    j = i
    end = i
    while j < len(tokens) and j not in taken:
        joined = j > i and tokens[j - 1].end == tokens[j].start - 1 and text[tokens[j].start - 1] == "-"
        ordinal = j == i and _ORDINAL.fullmatch(tokens[j].norm) is not None
        # "Sheng-guang" and "46th Airmobile Brigade" are names too
        # a token's first character is its word's (``_capitalised`` without slicing the word)
        if (text[tokens[j].start].isupper() and tokens[j].norm not in rules.not_names) or joined or ordinal:
            j += 1
            end = j
        elif tokens[j].norm in rules.connectors and j > i and j + 1 < len(tokens):
            j += 1
        else:
            break
        # a sentence break (". ") ends the name
        if j < len(tokens) and text[tokens[j - 1].end : tokens[j].start].strip(" -'\u2019"):
            break
    return end


def _rule_hits(text: str, tokens: list[Token], taken: set[int]) -> list[tuple[int, int, Entry]]:
    rules = entity_rules()
    found: list[tuple[int, int, Entry]] = []
    i = 0
    while i < len(tokens):
        if i in taken or not text[tokens[i].start].isupper():
            i += 1
            continue
        end = _capital_run(text, tokens, i, taken)
        if end <= i:
            i += 1
            continue
        norms = [t.norm for t in tokens[i:end]]
        name = _surface(text, tokens, i, end)
        titled = _title_length(norms)
        if any(n in rules.org_heads for n in norms[titled:]) and end - i >= 2:
            found.append((i, end, Entry("organization", name, None)))
        elif titled and 1 <= end - i - titled <= 3:
            # "Sergeant Ivan Kovalenko": the title is context, not part of the name
            found.append((i + titled, end, Entry("person", _surface(text, tokens, i + titled, end), None)))
        elif 2 <= end - i <= 3 and _person_context(text, tokens, i, end):
            found.append((i, end, Entry("person", name, None)))
        i = end
    return found


@lru_cache(maxsize=1)
def _titles_by_word() -> tuple[dict[str, list[tuple[str, ...]]], dict[str, list[tuple[str, ...]]]]:
    """The person titles by their first word and by their last, longest first as in the rules."""
    first: dict[str, list[tuple[str, ...]]] = {}
    last: dict[str, list[tuple[str, ...]]] = {}
    for title in entity_rules().person_titles:
        if title:
            first.setdefault(title[0], []).append(title)
            last.setdefault(title[-1], []).append(title)
    return first, last


def _title_length(norms: list[str]) -> int:
    """How many leading words of a capitalised run are a title ("Lt Col", "President")."""
    for title in _titles_by_word()[0].get(norms[0], ()) if norms else ():
        if len(norms) > len(title) and tuple(norms[: len(title)]) == title:
            return len(title)
    return 0


def _person_context(text: str, tokens: list[Token], start: int, end: int) -> bool:
    rules = entity_rules()
    before = [t.norm for t in tokens[max(0, start - 3) : start]]
    for title in _titles_by_word()[1].get(before[-1], ()) if before else ():
        if len(before) >= len(title) and tuple(before[-len(title) :]) == title:
            return True
    after = tokens[end].norm if end < len(tokens) else ""
    # "John Mwangi, a recruiter": an apposition after a two- or three-word name
    gap = text[tokens[end - 1].end : tokens[end].start] if end < len(tokens) else ""
    if gap.strip() == "," and after in ("a", "an", "the"):
        return True
    # "Ivan Petrenko, 34, ..." is the house style for named private people
    age = end + 1 < len(tokens) and tokens[end].norm.isdigit() and len(tokens[end].norm) <= 2
    return after in rules.reporting_verbs or age


def extract_entities(text: str) -> list[Entity]:
    """People, organisations, places and nationalities of ``text``, merged and counted."""
    return _entities(text, tokenize(text), None)


def entities_of(analysed: AnalysedText) -> list[Entity]:
    """``extract_entities(analysed.full)``, from the story's shared tokens."""
    return _entities(analysed.full, analysed.full_tokens, gazetteer_matches(analysed))


def _entities(text: str, tokens: list[Token], raw: list[Hit] | None) -> list[Entity]:
    hits = _gazetteer_hits(text, tokens, raw)
    taken = {i for s, e, _ in hits for i in range(s, e)}
    hits += _rule_hits(text, tokens, taken)
    hits.sort(key=lambda h: h[0])
    found: dict[tuple[str, str], _Found] = {}
    people: list[_Found] = []
    for start, end, entry in hits:
        if entry.type == "ignore":
            continue
        surface = _surface(text, tokens, start, end)
        key = (entry.type, entry.name if entry.country or entry.type != "person" else name_key(entry.name))
        if entry.type == "person" and key not in found:
            # a surname (or variant spelling) of someone already named is that person
            target = _same_person(people, entry.name)
            if target is not None:
                target.mentions += 1
                target.surfaces.add(surface)
                continue
        if key in found:
            found[key].mentions += 1
            found[key].surfaces.add(surface)
            continue
        item = _Found(entry, start, surfaces={surface})
        found[key] = item
        if entry.type == "person":
            people.append(item)
    _count_surnames(text, tokens, hits, people)
    ordered = sorted(found.values(), key=lambda f: (-f.mentions, f.start))
    return [
        Entity(name=f.entry.name, type=f.entry.type,
               country=f.entry.country if f.entry.type in ("place", "nationality") else None,
               mentions=f.mentions)
        for f in ordered
    ]


def _count_surnames(text: str, tokens: list[Token], hits: list[tuple[int, int, Entry]],
                    people: list[_Found]) -> None:
    """A later bare surname ("Kovalenko said") is one more mention of the full name seen."""
    surnames = {name_key(p.entry.name).split()[-1]: p for p in people if " " in p.entry.name}
    if not surnames:
        return
    taken = {i for s, e, _ in hits for i in range(s, e)}
    for i, tok in enumerate(tokens):
        if i in taken or not text[tok.start].isupper():
            continue
        person = surnames.get(name_key(tok.norm))
        if person is not None and (i == 0 or i - 1 not in taken or tokens[i - 1].norm != tok.norm):
            person.mentions += 1


def _same_person(people: list[_Found], name: str) -> _Found | None:
    key = name_key(name).split()
    for person in people:
        full = name_key(person.entry.name).split()
        known = [name_key(s).split() for s in person.surfaces]
        if key == full or key in known:
            return person
        if len(key) == 1 and full and key[0] == full[-1]:
            return person
        if len(key) > 1 and len(full) > 1 and key[-1] == full[-1] and key[0][:1] == full[0][:1]:
            return person
    return None


def countries_of(entities: list[Entity]) -> list[str]:
    """ISO alpha-2 codes of the places and nationalities, most mentioned first."""
    counts: Counter[str] = Counter()
    for entity in entities:
        if entity.country and entity.type in ("place", "nationality"):
            counts[entity.country] += entity.mentions
    return [code for code, _ in counts.most_common()]
