"""Language detection with py3langid; a declared language is only a hint.

py3langid ships its model inside the wheel (nothing is downloaded). Feeds and
pages often declare a wrong or site-wide language (an English edition of a
Russian site says ``ru``), so the declared value only breaks near-ties on
short or ambiguous texts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

logger = logging.getLogger(__name__)

# Detection cost grows with length; the first few thousand characters decide
# the language of a news article as well as the whole body does (a 1500-char
# sample agreed with the full text on all 181 AEB pages; see processors/README.md).
MAX_CHARS = 1500
# Below this length the n-gram evidence is thin enough that a hint may decide.
SHORT_TEXT = 200
# Under this confidence the detector's answer is withheld (reported as None).
MIN_CONFIDENCE = 0.3


@dataclass(frozen=True)
class LanguageGuess:
    """An ISO 639-1 code (or None when undecidable) and the detector's probability."""

    language: str | None
    confidence: float
    used_hint: bool = False


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    # norm_probs=True turns the naive-Bayes scores into probabilities we can compare.
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _normalise_hint(hint: str | None) -> str | None:
    if not hint:
        return None
    # "en-GB", "en_US", "EN" -> "en"
    return hint.strip().replace("_", "-").split("-")[0].lower() or None


def detect_language(text: str, hint: str | None = None) -> LanguageGuess:
    """Detect the language of ``text``; ``hint`` (a declared language) only breaks near-ties.

    The hint wins when the text is short or the detector is unsure AND the hint is
    among its plausible candidates; a hint the text contradicts is ignored.
    """
    sample = " ".join(text[:MAX_CHARS].split())
    hint_code = _normalise_hint(hint)
    if len(sample) < 3 or not any(ch.isalpha() for ch in sample):
        return LanguageGuess(None, 0.0)
    ranked = _identifier().rank(sample)
    top, top_p = ranked[0]
    if hint_code and hint_code != top:
        hint_p = next((float(p) for lang, p in ranked[:5] if lang == hint_code), 0.0)
        unsure = len(sample) < SHORT_TEXT or top_p < 0.6
        if unsure and hint_p >= 0.25 * top_p and hint_p > 0.05:
            return LanguageGuess(hint_code, round(hint_p, 4), used_hint=True)
    if top_p < MIN_CONFIDENCE:
        if hint_code:
            return LanguageGuess(hint_code, round(float(top_p), 4), used_hint=True)
        return LanguageGuess(None, round(float(top_p), 4))
    return LanguageGuess(top, round(float(top_p), 4))
