"""Regenerate tests/fixtures/minilm_reference.npz: the original model's vectors for a few dozen texts.

    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu  # CPU build: plain pip pulls CUDA
    pip install -e '.[reference]'
    python bench/minilm_reference.py

The vectors come from sentence-transformers running the bundled all-MiniLM-L6-v2 with torch (window 256 tokens,
mean pooling, L2 normalisation): the reference tests/test_reference.py holds newsbot's own ONNX graph to. The
texts are cut from the repo's sample articles at lengths from none to past the window (those are truncated at 256
tokens by both) and stored with the vectors (float16: 30 KB, rounding moves a cosine by < 1e-6).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "tests" / "fixtures" / "minilm_reference.npz"
WORD_COUNTS = (1, 2, 3, 5, 8, 12, 17, 25, 35, 50, 70, 90, 110, 130, 160, 190, 220, 260, 320)


def texts() -> list[str]:
    """Deterministic texts of every length class, cut from the repo's own sample articles."""
    bodies = [json.loads(line)["body"] for line in (ROOT / "tests/fixtures/articles.jsonl").read_text().splitlines()]
    sample = (ROOT / "data" / "trump-kim-letter.txt").read_text()
    words = " ".join([*bodies, sample]).split()
    out = ["", "Why did the summits fail?", "Café prices: €4.50 — up 12% (2024)!", "naïve façade, résumé; Zürich"]
    for i, n in enumerate(WORD_COUNTS):
        for start in ((i * 97) % max(1, len(words) - n), (i * 389 + 50) % max(1, len(words) - n)):
            out.append(" ".join(words[start:start + n]))
    out += [" ".join(sample.split()[:400]), " ".join(sample.split()[-400:])]  # far past the window
    return out


def main() -> None:
    from sentence_transformers import SentenceTransformer

    from index.embed import MODEL_WINDOW, bundled_model_dir

    model = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    model.max_seq_length = MODEL_WINDOW
    items = texts()
    vectors = model.encode(items, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)
    np.savez_compressed(OUT, texts=np.array(items), vectors=vectors.astype(np.float16))
    print(f"{OUT.relative_to(ROOT)}: {len(items)} texts, {OUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
