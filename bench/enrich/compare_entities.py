"""Entity recognition: gazetteer + rules (shipped) vs spaCy's statistical NER, on a labelled sample.

    .venv/bin/python bench/enrich/compare_entities.py            # gazetteer + rules only
    SPACY_MODEL=en_core_web_sm python bench/enrich/compare_entities.py   # both (spaCy installed)

Both approaches share the same normalisation (aliases -> canonical names,
demonyms -> countries) so the comparison is about *finding* the names. Scores
are micro precision/recall over the per-text sets of people, organisations,
places and countries in bench/enrich/entities-gold.yaml.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from processors.entities import countries_of, extract_entities, name_key
from processors.gazetteer import aliases, demonym_forms

GOLD = Path(__file__).with_name("entities-gold.yaml")
Result = dict[str, set[str]]


def gazetteer_rules(text: str) -> Result:
    entities = extract_entities(text)
    return {
        "people": {e.name for e in entities if e.type == "person"},
        "orgs": {e.name for e in entities if e.type == "organization"},
        "places": {e.name for e in entities if e.type == "place"},
        "countries": set(countries_of(entities)),
    }


def spacy_ner(model: str) -> Callable[[str], Result]:
    import spacy

    nlp = spacy.load(model, disable=["parser", "lemmatizer"])
    table = {" ".join(a.words).casefold(): a.entry for a in aliases()}
    demonyms = {k.casefold(): v for k, v in demonym_forms().items()}

    def run(text: str) -> Result:
        out: Result = {"people": set(), "orgs": set(), "places": set(), "countries": set()}
        for ent in nlp(text).ents:
            surface = ent.text.removeprefix("the ").removesuffix("'s").removesuffix("\u2019s")
            entry = table.get(" ".join(surface.replace(".", " ").split()).casefold())
            if ent.label_ == "PERSON":
                out["people"].add(entry.name if entry and entry.type == "person" else surface)
            elif ent.label_ == "ORG":
                out["orgs"].add(entry.name if entry else surface)
            elif ent.label_ in ("GPE", "LOC", "FAC"):
                out["places"].add(entry.name if entry else surface)
                if entry and entry.country:
                    out["countries"].add(entry.country)
            elif ent.label_ == "NORP" and surface.casefold() in demonyms:
                out["countries"].add(demonyms[surface.casefold()])
        # a bare surname of someone named in full is that person
        full = [p for p in out["people"] if " " in p]
        out["people"] = {p for p in out["people"]
                         if " " in p or not any(name_key(f).endswith(name_key(p)) for f in full)}
        return out

    return run


def _keys(kind: str, names: set[str]) -> set[str]:
    return names if kind == "countries" else {name_key(n) for n in names}


def score(
    approach: Callable[[str], Result], gold: list[dict]
) -> tuple[dict[str, tuple[float, float]], float]:
    counts = {k: [0, 0, 0] for k in ("people", "orgs", "places", "countries")}
    times = []
    for item in gold:
        started = time.perf_counter()
        found = approach(item["text"])
        times.append((time.perf_counter() - started) * 1000)
        for kind, c in counts.items():
            want, got = _keys(kind, set(item[kind])), _keys(kind, found[kind])
            c[0] += len(want & got)
            c[1] += len(got - want)
            c[2] += len(want - got)
    table = {k: (tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0)
             for k, (tp, fp, fn) in counts.items()}
    return table, statistics.mean(times)


def main() -> int:
    gold = yaml.safe_load(GOLD.read_text(encoding="utf-8"))
    approaches: dict[str, Callable[[str], Result]] = {"gazetteer+rules": gazetteer_rules}
    model = os.environ.get("SPACY_MODEL")
    if model:
        approaches[f"spaCy {model}"] = spacy_ner(model)
    print(f"{len(gold)} texts; P/R per kind; mean ms per text")
    for name, approach in approaches.items():
        approach(gold[0]["text"])  # load / warm up outside the timing
        table, ms = score(approach, gold)
        cells = "  ".join(f"{k} P {p:.2f} R {r:.2f}" for k, (p, r) in table.items())
        print(f"{name:<28} {cells}  {ms:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
