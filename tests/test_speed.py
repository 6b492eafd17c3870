"""Speed work that must not cost correctness: the int8 model, precision bookkeeping, overlapped writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.errors import NewsbotError
from index.types import Article
from tests.fakes import FIXTURES, make_settings

TEXTS = [
    "The city council voted 7-2 on Tuesday to add protected bike lanes on Main Street.",
    "Harbor Tech said quarterly revenue rose 18 percent, beating analysts' forecasts.",
    "Water restrictions were imposed across the valley after the driest summer on record.",
    "The central bank left interest rates unchanged, citing slowing inflation.",
]


def _articles(app: Any) -> list[Article]:
    return [a for a in app.index.load([FIXTURES / "articles.jsonl"]) if isinstance(a, Article)]


# -- precision names ---------------------------------------------------------------------------------------
def test_precision_is_part_of_the_model_name() -> None:
    from index.embed import MODEL_NAME, model_name, precision_of

    assert model_name("fp32") == MODEL_NAME  # indexes built before int8 existed stay valid
    assert model_name("int8") != MODEL_NAME
    assert [precision_of(model_name(p)) for p in ("int8", "fp32")] == ["int8", "fp32"]
    assert precision_of("test/hash-bow") is None
    with pytest.raises(NewsbotError, match="NEWSBOT_EMBED_PRECISION"):
        model_name("fp16")


def test_changing_precision_changes_every_content_hash() -> None:
    from index.embed import model_name
    from index.ingest import ChunkingConfig, content_hash

    article = Article(id="a", title="T", body="Some text.")
    assert content_hash(article, ChunkingConfig(), model_name("int8")) != content_hash(
        article, ChunkingConfig(), model_name("fp32"))


def test_new_index_records_the_setting_existing_index_keeps_its_own(tmp_path: Path) -> None:
    from bot.wiring import Services
    from index.embed import model_name
    from index.store import ChromaStore

    fresh = Services(make_settings(tmp_path / "new"))
    assert fresh.index.precision == "int8"  # the default
    assert fresh.index.store.embedding_model == model_name("int8")

    old_dir = tmp_path / "old"
    ChromaStore(path=old_dir / "chroma", embedding_model=model_name("fp32"))  # an index built with fp32
    app = Services(make_settings(old_dir, embed_precision="int8"))
    assert app.index.precision == "fp32"  # queries must be embedded like the stored vectors
    assert app.index.store.embedding_model == model_name("fp32")

    other = tmp_path / "other"
    ChromaStore(path=other / "chroma", embedding_model="someone/else")
    with pytest.raises(NewsbotError, match="someone/else"):
        Services(make_settings(other)).index.store  # noqa: B018  (a foreign model is still refused)


# -- the int8 model ----------------------------------------------------------------------------------------
def test_int8_model_is_cached_and_close_to_fp32(model_cache: Path, real_embedder: Any) -> None:
    from index.embed import MiniLM, int8_path, onnx_path

    int8 = MiniLM(model_cache, precision="int8")
    path = int8_path(model_cache)
    assert path.exists() and path.stat().st_size < 0.9 * onnx_path(model_cache).stat().st_size
    stamp = path.stat().st_mtime_ns
    MiniLM(model_cache, precision="int8")
    assert path.stat().st_mtime_ns == stamp  # reused, not rebuilt

    a, b = int8.embed(TEXTS), real_embedder.embed(TEXTS)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    cos = (a * b).sum(1)
    assert cos.min() >= 0.99, cos
    # and it still ranks: each text is nearest to itself among the fp32 vectors
    assert list((a @ b.T).argmax(1)) == list(range(len(TEXTS)))


def test_the_graph_is_fused_per_layer_and_int8_quantises_the_fused_attention(model_cache: Path) -> None:
    import onnx

    from index import embed

    graph = onnx.load(str(embed.onnx_path(model_cache))).graph
    ops = [n.op_type for n in graph.node]
    fused = {op: ops.count(op) for op in ("EmbedLayerNormalization", "Attention", "BiasGelu", "SkipLayerNormalization")}
    assert fused == {"EmbedLayerNormalization": 1, "Attention": 6, "BiasGelu": 6, "SkipLayerNormalization": 12}
    assert "Softmax" not in ops
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"] and [o.name for o in graph.output] == [
        "embedding"]
    int8 = [n.op_type for n in onnx.load(str(embed.int8_path(model_cache))).graph.node]
    assert int8.count("QAttention") == 6 and "MatMulInteger" in int8
    assert int8.count("MatMul") == 6  # the feed-forward output projections stay fp32


def test_int8_recipe_change_rebuilds_the_cached_file(tmp_path: Path, model_cache: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from index import embed

    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(embed.onnx_path(model_cache), cache)  # the fp32 export is reused, only the int8 step reruns
    current = embed.int8_path(cache)
    monkeypatch.setattr(embed, "QUANT_VERSION", "test-next")
    rebuilt = embed.int8_path(cache)
    assert rebuilt != current and rebuilt.exists() and rebuilt.stat().st_size > 1_000_000
    assert not list(cache.glob("*.tmp"))
    assert not current.exists() and embed.onnx_path(cache).exists()  # the stale int8 graph is pruned, fp32 kept


def test_graphs_of_an_older_build_are_rebuilt_and_pruned(tmp_path: Path) -> None:
    """A cache from before EXPORT_VERSION 3 (torch exports) holds other names: the new graph is built, they go."""
    from index import embed

    cache = tmp_path / "cache"
    cache.mkdir()
    stale = [cache / "minilm-l6-v2-95724aa0ab6b.onnx", cache / "minilm-l6-v2-95724aa0ab6b-int8q2.onnx"]
    for path in stale:
        path.write_bytes(b"an old export")
    built = embed.onnx_path(cache)
    assert built.stat().st_size > 1_000_000 and not any(p.exists() for p in stale)
    assert sorted(p.name for p in cache.iterdir()) == [built.name]


# -- batch shapes ------------------------------------------------------------------------------------------
def test_length_groups_are_the_cheapest_cuts_within_the_budget() -> None:
    import itertools
    import random

    from index.embed import length_groups

    def fits(runs: list[tuple[int, int]], widths: list[int], budget: int) -> bool:
        return all((end - start) * widths[end - 1] <= budget or end - start == 1 for start, end in runs)

    def cost(runs: list[tuple[int, int]], widths: list[int], overhead: int) -> int:
        return sum((end - start) * widths[end - 1] + overhead for start, end in runs)

    rng = random.Random(0)
    for _ in range(300):
        widths = sorted(rng.randint(3, 256) for _ in range(rng.randint(1, 9)))
        budget, overhead = rng.choice([8, 300, 1000, 8192]), rng.choice([0, 16, 64])
        runs = length_groups(widths, budget, overhead)
        assert [s for s, _ in runs] == [0, *(e for _, e in runs[:-1])] and runs[-1][1] == len(widths)
        assert fits(runs, widths, budget)
        every = [list(itertools.pairwise((0, *inner, len(widths))))
                 for k in range(len(widths)) for inner in itertools.combinations(range(1, len(widths)), k)]
        assert cost(runs, widths, overhead) == min(cost(r, widths, overhead) for r in every if fits(r, widths, budget))
    assert length_groups([], 8192) == []


def test_batching_by_length_leaves_fp32_vectors_as_if_each_ran_alone(real_embedder: Any) -> None:
    seqs = [real_embedder.tokenize(" ".join(TEXTS[: 1 + i % 4]) * (1 + i % 3))[0][:254] for i in range(12)]
    together = real_embedder.embed_ids(seqs)
    alone = np.concatenate([real_embedder.embed_ids([s]) for s in seqs])
    assert (together * alone).sum(1).min() > 0.99999


# -- overlapped writes -------------------------------------------------------------------------------------
def test_overlapped_writes_store_exactly_what_sync_writes_store(tmp_path: Path, hash_embedder: Any) -> None:
    from bot.wiring import Services
    from index.ingest import ChunkingConfig, ingest

    results = []
    for mode in (True, False):
        app = Services(make_settings(tmp_path / f"d{mode}"), embedder=hash_embedder)
        report = ingest(_articles(app), app.index.store, app.index.embedder,
                        config=ChunkingConfig(), batch_articles=2, overlap_writes=mode)
        chunks = sorted((c.id, c.text, c.meta.content_hash) for c in app.index.store.iter_chunks())
        results.append(((report.new, report.updated, report.chunks_added, report.chunks_total), chunks,
                        sorted(app.index.store.catalog())))
    assert results[0] == results[1]
    assert results[0][0][0] == 6 and results[0][0][2] == len(results[0][1])


class FailingStore:
    """Our ChromaStore (real Chroma underneath) whose n-th ``write_articles`` call fails like a full disk."""

    def __init__(self, inner: Any, fail_on: int) -> None:
        self._inner, self._fail_on, self.calls = inner, fail_on, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write_articles(self, items: Any, *args: Any, **kw: Any) -> None:
        self.calls += 1
        if self.calls == self._fail_on:
            raise OSError("No space left on device")
        self._inner.write_articles(items, *args, **kw)


def test_a_failed_background_write_surfaces_and_leaves_only_whole_articles(tmp_path: Path,
                                                                          hash_embedder: Any) -> None:
    from bot.wiring import Services
    from index.ingest import ChunkingConfig, ingest

    app = Services(make_settings(tmp_path / "d"), embedder=hash_embedder)
    articles = _articles(app)
    store = FailingStore(app.index.store, fail_on=2)
    with pytest.raises(NewsbotError, match="could not write to the index: No space left on device"):
        ingest(articles, store, app.index.embedder, config=ChunkingConfig(),  # type: ignore[arg-type]
               batch_articles=2)
    committed = app.index.store.catalog()
    assert set(committed) == {a.id for a in articles[:2]}  # the first batch only; nothing after the failure
    for aid, rec in committed.items():
        assert len([c for c in app.index.store.iter_chunks() if c.meta.article_id == aid]) == rec.n_chunks
    # a rerun converges to the full index
    report = app.index.ingest(articles)
    assert (report.new, report.unchanged) == (4, 2)
    assert set(app.index.store.catalog()) == {a.id for a in articles}
