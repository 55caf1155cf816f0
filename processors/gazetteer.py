"""The data behind entity recognition: countries, demonyms, places, people, organisations.

Everything ships inside the package (``processors/data/``) or comes from
pycountry, so nothing is downloaded at run time. Loaded once per process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import pycountry
import yaml

from processors.text import tokenize
from processors.topic_rules import Pattern, WordTest

logger = logging.getLogger(__name__)

EntityType = str  # "person" | "organization" | "place" | "nationality" | "ignore"

# Plural of a demonym is "+s" except for these endings ("Chinese", "Polish", "Dutch", "Swiss").
_NO_PLURAL = ("ese", "sh", "ch", "ss", "z", "x")


@dataclass(frozen=True, slots=True)
class Entry:
    """One normalised entity: every alias maps to it."""

    type: EntityType
    name: str
    country: str | None


@dataclass(frozen=True, slots=True)
class Alias:
    """How one alias must look in the text: its words and which must be capitalised."""

    entry: Entry
    pattern: Pattern
    capitals: tuple[bool, ...]  # word i must start with an upper-case letter
    acronym: bool  # all-capital alias ("IS", "UN"): the surface must match exactly
    words: tuple[str, ...]  # the alias's words as written


def _read_data(name: str) -> str:
    return resources.files("processors").joinpath("data", name).read_text(encoding="utf-8")


def _rows(name: str) -> list[list[str]]:
    rows = []
    for line in _read_data(name).splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.rstrip("\n").split("\t"))
    return rows


def plural(demonym: str) -> str | None:
    """The plural noun of a demonym ("Colombian" -> "Colombians"), None if it has none."""
    return None if demonym.endswith(_NO_PLURAL) else demonym + "s"


@lru_cache(maxsize=1)
def demonym_forms() -> dict[str, str]:
    """Every demonym form (adjective and plural) -> ISO alpha-2, e.g. "North Koreans" -> "KP"."""
    forms: dict[str, str] = {}
    for row in _rows("demonyms.tsv"):
        code, words = row[0].strip().upper(), row[1].split("|")
        for word in words:
            word = word.strip()
            forms.setdefault(word, code)
            many = plural(word)
            if many:
                forms.setdefault(many, code)
    return forms


@lru_cache(maxsize=1)
def canonical_demonyms() -> dict[str, str]:
    """ISO alpha-2 -> the demonym used as the nationality's name ("KP" -> "North Korean")."""
    return {row[0].strip().upper(): row[1].split("|")[0].strip() for row in _rows("demonyms.tsv")}


def _alias(entry: Entry, text: str) -> Alias | None:
    tokens = tokenize(text)
    if not tokens:
        return None
    words = [text[t.start : t.end] for t in tokens]
    letters = [c for c in text if c.isalpha()]
    acronym = len(letters) >= 2 and all(c.isupper() for c in letters) and len(tokens) <= 3
    return Alias(
        entry=entry,
        pattern=tuple(WordTest(t.norm, False) for t in tokens),
        capitals=tuple(w[:1].isupper() for w in words),
        acronym=acronym,
        words=tuple(w[:-2] if w.endswith(("'s", "\u2019s")) else w for w in words),
    )


@lru_cache(maxsize=1)
def aliases() -> list[Alias]:
    """Every alias of every known entity: gazetteer rows, pycountry names and demonyms."""
    out: list[Alias] = []
    country_names: dict[str, tuple[str, list[str]]] = {}
    for country in pycountry.countries:
        names = [country.name]
        names += [getattr(country, a) for a in ("common_name", "official_name") if hasattr(country, a)]
        # "Korea, Republic of" style names are catalogue forms, never written in news
        names = [n for n in names if "," not in n]
        country_names[country.alpha_2] = (getattr(country, "common_name", country.name), names)
    for row in _rows("gazetteer.tsv"):
        kind, name, code = row[0].strip(), row[1].strip(), (row[2].strip() if len(row) > 2 else "")
        extra = [a.strip() for a in (row[3].split("|") if len(row) > 3 else []) if a.strip()]
        if kind == "country":
            _, names = country_names.get(code, (name, []))
            country_names[code] = (name, [name, *names, *extra])
            continue
        entry = Entry(kind, name, code or None)
        for text in dict.fromkeys([name, *extra]):
            alias = _alias(entry, text)
            if alias:
                out.append(alias)
    for code, (name, names) in country_names.items():
        entry = Entry("place", name, code)
        for text in dict.fromkeys(names):
            alias = _alias(entry, text)
            if alias:
                out.append(alias)
    canonical = canonical_demonyms()
    for form, code in demonym_forms().items():
        alias = _alias(Entry("nationality", canonical[code], code), form)
        if alias:
            out.append(alias)
    return out


@dataclass(frozen=True)
class EntityRules:
    """Word lists for names the gazetteer does not know (processors/data/entity_rules.yaml)."""

    person_titles: tuple[tuple[str, ...], ...]
    reporting_verbs: frozenset[str]
    org_heads: frozenset[str]
    connectors: frozenset[str]
    not_names: frozenset[str]


@lru_cache(maxsize=1)
def entity_rules() -> EntityRules:
    """The rule word lists, normalised like tokens."""
    raw: dict[str, Any] = yaml.safe_load(_read_data("entity_rules.yaml"))

    def words(key: str) -> frozenset[str]:
        return frozenset(t.norm for w in raw[key] for t in tokenize(str(w)))

    return EntityRules(
        person_titles=tuple(
            sorted({tuple(t.norm for t in tokenize(str(w))) for w in raw["person_titles"]},
                   key=len, reverse=True)
        ),
        reporting_verbs=words("reporting_verbs"),
        org_heads=words("org_heads"),
        connectors=words("connectors"),
        not_names=words("not_names"),
    )
