"""Language detection: the detector decides, a declared language only breaks near-ties."""

from processors.language import detect_language


def test_detects_common_news_languages() -> None:
    samples = {
        "en": "Two Colombian nationals were captured while fighting for Russia near Pokrovsk.",
        "fr": "Deux ressortissants colombiens ont été capturés alors qu'ils combattaient pour la Russie.",
        "de": "Zwei kolumbianische Staatsbürger wurden gefangen genommen, als sie für Russland kämpften.",
        "es": "Dos ciudadanos colombianos fueron capturados mientras luchaban por Rusia cerca de Pokrovsk.",
        "ru": "Двое граждан Колумбии попали в плен, воюя на стороне России под Покровском.",
        "uk": "Двоє громадян Колумбії потрапили в полон, воюючи на боці Росії під Покровськом.",
    }
    for lang, text in samples.items():
        guess = detect_language(text)
        assert guess.language == lang, (lang, guess)
        assert 0.5 < guess.confidence <= 1.0


def test_a_wrong_declared_language_is_ignored_on_clear_text() -> None:
    text = "Two Colombian nationals were captured while fighting for Russia near Pokrovsk, officials said."
    guess = detect_language(text, hint="ru")
    assert guess.language == "en"
    assert not guess.used_hint


def test_the_hint_breaks_a_tie_on_a_short_ambiguous_text() -> None:
    # "Pokrovsk" alone is a name, not language evidence; the feed's declaration wins
    guess = detect_language("Pokrovsk", hint="uk-UA")
    assert guess.language == "uk"
    assert guess.used_hint


def test_no_text_means_no_language() -> None:
    assert detect_language("").language is None
    assert detect_language("1234 5678 !!!").language is None
