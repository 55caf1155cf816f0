"""Does a 1500-character sample give the same language as the whole body? (AEB pages)

    .venv/bin/python bench/enrich/language_sample.py [--corpus ../shared/corpora/aeb]
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections import Counter
from pathlib import Path

import trafilatura
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from pipeline.settings import load_settings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=load_settings().shared_dir / "corpora" / "aeb")
    args = parser.parse_args()
    files = sorted((args.corpus / "html").glob("*.html.gz"))
    if not files:
        print(f"skipped: corpus not found at {args.corpus}", file=sys.stderr)
        return 0
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    agree, langs, disagreements = 0, Counter(), []
    for f in files:
        text = trafilatura.extract(gzip.decompress(f.read_bytes()).decode("utf-8", "replace")) or ""
        if not text:
            continue
        full = ident.classify(" ".join(text.split()))[0]
        sample = ident.classify(" ".join(text[:1500].split()))[0]
        langs[full] += 1
        if full == sample:
            agree += 1
        else:
            disagreements.append((f.name[:12], full, sample))
    print(f"pages with text: {sum(langs.values())}, languages (full text): {dict(langs)}")
    print(f"1500-char sample agrees with full text: {agree}/{sum(langs.values())}")
    for item in disagreements:
        print("  differs:", item)
    return 0


if __name__ == "__main__":
    sys.exit(main())
