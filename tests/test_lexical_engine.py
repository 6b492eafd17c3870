"""The tantivy lexical engine against a brute-force BM25 (k1 1.2, b 0.75, Lucene idf) on small generated corpora:
ranking, filters, pool re-scoring, deletes, idempotent re-application, two processes, a second writer."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

pytest.importorskip("tantivy")  # the optional "lexical" extra (in "dev")

from index.errors import NewsbotError
from index.lexical import tokenize
from index.lexical_engine import LexicalChunk, LexicalEngine, TantivyEngine
from index.types import Filters

ROOT = Path(__file__).resolve().parents[1]
K1, B = 1.2, 0.75
# tantivy keeps a document's length in one byte: exact up to 40 tokens, then buckets a few percent wide. Measured
# on these corpora the worst relative score difference is about 2.5%; scores closer than twice this are near-ties.
REL = 0.04

WORDS = ("market election storm bank vote rate inflation court ruling player team season coach fans price oil "
         "energy climate summit leader minister police report company shares profit loss growth city council "
         "school teacher students hospital doctor patients virus vaccine film music festival award star game "
         "league final goal striker trade tariff border army missile ceasefire talks deal merger lawsuit").split()
SOURCES = ("bbc", "cnn", "reuters", "the verge")


def _sentence(rng: random.Random) -> str:
    weights = [1 / (i + 1) for i in range(len(WORDS))]  # Zipf-like: a few common words, many rare ones
    return " ".join(rng.choices(WORDS, weights, k=rng.randint(3, 14))).capitalize() + "."


def make_corpus(seed: int = 7, articles: int = 24) -> list[LexicalChunk]:
    """Articles of 1–3 chunks, each of 2–8 sentences (chunks up to ~110 tokens: their lengths get quantised)."""
    rng = random.Random(seed)
    out = []
    for a in range(articles):
        title = " ".join(rng.sample(WORDS, 3)).title()
        source, ts = SOURCES[a % len(SOURCES)], 1_700_000_000 + 86_400 * rng.randint(0, 30) if a % 7 else 0
        for c in range(rng.randint(1, 3)):
            sentences = tuple((_sentence(rng), rng.choice(("fact", "quote", "heading")))
                              for _ in range(rng.randint(2, 8)))
            out.append(LexicalChunk(f"art{a}:{c}", f"art{a}", source, ts, title, " ".join(s for s, _ in sentences),
                                    sentences))
    return out


def bm25(docs: Sequence[list[str]], query: list[str], stats: Sequence[list[str]] | None = None) -> list[float]:
    """Exact BM25 of every document, a query term counted once per occurrence (as index.lexical.Bm25), with the
    collection statistics (N, df, average length) of ``stats`` (default: ``docs``)."""
    stats = docs if stats is None else stats
    n = len(stats)
    avgdl = sum(map(len, stats)) / n
    df = Counter(t for d in stats for t in set(d))
    out = []
    for d in docs:
        tf, norm = Counter(d), K1 * (1 - B + B * len(d) / avgdl)
        out.append(sum(math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) * tf[t] / (tf[t] + norm)
                       for t in query if tf[t]))
    return out


def _chunk_terms(corpus: Sequence[LexicalChunk]) -> list[list[str]]:
    return [tokenize([c.title])[0] + tokenize([c.text])[0] for c in corpus]


def chunk_scores(corpus: Sequence[LexicalChunk], query: list[str],
                 stats: Sequence[LexicalChunk] | None = None) -> dict[str, float]:
    docs = _chunk_terms(corpus)
    return dict(zip([c.id for c in corpus], bm25(docs, query, None if stats is None else _chunk_terms(stats)),
                    strict=True))


def sentence_scores(corpus: Sequence[LexicalChunk], query: list[str]) -> dict[str, float]:
    owners = [c.id for c in corpus for _ in c.sentences]
    best: dict[str, float] = {}
    for owner, score in zip(owners, bm25(tokenize([s for c in corpus for s, _ in c.sentences]), query),
                            strict=True):
        best[owner] = max(best.get(owner, 0.0), score)
    return best


def assert_ranking(got: list[tuple[str, float]], exact: dict[str, float], k: int,
                   keep: Callable[[str], bool] = lambda _: True) -> None:
    """``got`` is the top ``k`` of ``exact`` (positive scores, kept ids), up to near-ties, with close scores."""
    wanted = sorted(((s, i) for i, s in exact.items() if s > 0 and keep(i)), reverse=True)
    assert len(got) == min(k, len(wanted))
    for chunk_id, score in got:
        assert keep(chunk_id)
        assert score == pytest.approx(exact[chunk_id], rel=REL)
    for (a, _), (b, _) in zip(got, got[1:], strict=False):
        assert exact[b] <= exact[a] * (1 + 2 * REL)  # in order, unless a near-tie
    if len(wanted) > k:
        kth = wanted[k - 1][0]
        must = {i for s, i in wanted if s > kth * (1 + 2 * REL)}
        assert must <= {i for i, _ in got}  # nothing clearly better was left out


QUERIES = ["election vote", "oil price inflation", "vaccine virus hospital patients", "striker goal final league",
           "ceasefire talks army border missile", "merger lawsuit shares", "market", "festival award film star"]


@pytest.fixture(scope="module")
def corpus() -> list[LexicalChunk]:
    return make_corpus()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, corpus: list[LexicalChunk]) -> TantivyEngine:
    found = TantivyEngine.open(tmp_path_factory.mktemp("lexical"))
    assert found.apply(corpus) == len({c.article_id for c in corpus})
    return found


def test_the_tantivy_engine_is_a_lexical_engine(engine: TantivyEngine, corpus: list[LexicalChunk]) -> None:
    check: LexicalEngine = engine  # the Protocol is the seam retrieval will use
    assert len(check) == len(corpus)


@pytest.mark.parametrize("question", QUERIES)
def test_chunk_ranking_matches_brute_force_bm25(engine: TantivyEngine, corpus: list[LexicalChunk],
                                                question: str) -> None:
    terms = tokenize([question])[0]
    assert_ranking(engine.search_chunks(terms, 10), chunk_scores(corpus, terms), 10)


@pytest.mark.parametrize("question", QUERIES)
def test_sentence_ranking_is_each_chunks_best_sentence(engine: TantivyEngine, corpus: list[LexicalChunk],
                                                       question: str) -> None:
    terms = tokenize([question])[0]
    assert_ranking(engine.search_sentences(terms, 10), sentence_scores(corpus, terms), 10)


def test_a_term_given_twice_counts_twice(engine: TantivyEngine, corpus: list[LexicalChunk]) -> None:
    terms = tokenize(["oil oil price"])[0]
    assert terms.count("oil") == 2
    assert_ranking(engine.search_chunks(terms, 10), chunk_scores(corpus, terms), 10)


def test_terms_absent_from_the_index_match_nothing(engine: TantivyEngine) -> None:
    assert engine.search_chunks(["zzzunknown"], 10) == engine.search_sentences([], 10) == []
    assert engine.scores_for(["zzzunknown"], ["art0:0"]) == {}


@pytest.mark.parametrize("filters", [
    Filters(sources=("cnn",)), Filters(sources=("bbc", "the verge")), Filters(since=1_700_000_000 + 86_400 * 10),
    Filters(until=1_700_000_000 + 86_400 * 12), Filters(since=1_700_000_000, until=1_700_000_000 + 86_400 * 15),
    Filters(articles=frozenset({"art1", "art5", "art9"})), Filters(sources=("reuters",), since=1_700_000_000)])
def test_filters_keep_only_their_chunks_and_sentences(engine: TantivyEngine, corpus: list[LexicalChunk],
                                                      filters: Filters) -> None:
    by_id = {c.id: c for c in corpus}

    def keep(chunk_id: str) -> bool:
        c = by_id[chunk_id]
        return ((not filters.sources or c.source in filters.sources)
                and (filters.since is None or c.published_ts >= filters.since)
                and (filters.until is None or c.published_ts <= filters.until)
                and (filters.articles is None or c.article_id in filters.articles))

    for question in QUERIES:
        terms = tokenize([question])[0]
        assert_ranking(engine.search_chunks(terms, 5, filters), chunk_scores(corpus, terms), 5, keep)
        assert_ranking(engine.search_sentences(terms, 5, filters), sentence_scores(corpus, terms), 5, keep)


def test_no_articles_means_nothing(engine: TantivyEngine) -> None:
    assert engine.search_chunks(tokenize(["market"])[0], 5, Filters(articles=frozenset())) == []


def test_pool_rescoring_gives_each_candidates_exact_scores(engine: TantivyEngine, corpus: list[LexicalChunk]) -> None:
    pool = [c.id for c in corpus[::3]]
    for question in QUERIES:
        terms = tokenize([question])[0]
        for got, exact in ((engine.scores_for(terms, pool), chunk_scores(corpus, terms)),
                           (engine.sentence_scores_for(terms, pool), sentence_scores(corpus, terms))):
            assert set(got) == {i for i in pool if exact[i] > 0}
            assert all(got[i] == pytest.approx(exact[i], rel=REL) for i in got)


def test_doc_freq_and_size(engine: TantivyEngine, corpus: list[LexicalChunk]) -> None:
    docs = [set(d) for d in _chunk_terms(corpus)]
    assert len(engine) == len(corpus)
    for term in tokenize(["market vaccine ceasefire zzzunknown"])[0]:
        assert engine.doc_freq(term) == sum(term in d for d in docs)


def _fresh(tmp_path: Path, corpus: list[LexicalChunk]) -> TantivyEngine:
    engine = TantivyEngine.open(tmp_path / "lexical")
    engine.apply(corpus)
    return engine


def test_deleted_articles_disappear_with_their_sentences(tmp_path: Path, corpus: list[LexicalChunk]) -> None:
    engine = _fresh(tmp_path, corpus)
    gone = {"art0", "art3", "art4", "art10"}
    assert engine.apply([], gone) == len(gone)
    left = [c for c in corpus if c.article_id not in gone]
    assert len(engine) == len(left)
    for question in QUERIES:
        terms = tokenize([question])[0]
        found = engine.search_chunks(terms, 100) + engine.search_sentences(terms, 100)
        assert found and not {i.split(":")[0] for i, _ in found} & gone
        assert not engine.scores_for(terms, [c.id for c in corpus if c.article_id in gone])
        assert not engine.sentence_scores_for(terms, [c.id for c in corpus if c.article_id in gone])
        # until their segment is merged, deleted documents still count in tantivy's BM25 statistics (N, df and
        # average length): scores are exact BM25 of what is left with the statistics of everything indexed
        assert_ranking(engine.search_chunks(terms, 10), chunk_scores(left, terms, stats=corpus), 10)
    assert engine.doc_freq("market") == sum("market" in d for d in _chunk_terms(left))  # live documents only
    assert engine.apply([], gone | {"never-indexed"}) == 0  # nothing left to delete: no commit


def test_reapplying_the_same_upsert_changes_nothing(tmp_path: Path, corpus: list[LexicalChunk]) -> None:
    engine = _fresh(tmp_path, corpus)
    meta = [(tmp_path / "lexical" / name / "meta.json").read_text() for name in ("chunks", "sentences")]
    terms = tokenize(["election vote market"])[0]
    before = engine.search_chunks(terms, 20), engine.search_sentences(terms, 20)
    assert engine.apply([c for c in corpus if c.article_id in {"art1", "art5", "art6"}]) == 0  # whole articles
    assert [(tmp_path / "lexical" / name / "meta.json").read_text() for name in ("chunks", "sentences")] == meta
    assert (engine.search_chunks(terms, 20), engine.search_sentences(terms, 20)) == before


def test_an_upsert_replaces_all_of_an_articles_chunks(tmp_path: Path, corpus: list[LexicalChunk]) -> None:
    engine = _fresh(tmp_path, corpus)
    old = [c for c in corpus if c.article_id == "art2"]
    new = LexicalChunk("art2:new", "art2", "cnn", 1_700_000_000, "Zebra crossing", "Zebras crossed the zebra road.",
                       (("Zebras crossed the zebra road.", "fact"),))
    assert engine.apply([new]) == 1
    assert len(engine) == len(corpus) - len(old) + 1
    assert engine.search_chunks(["zebra"], 5)[0][0] == "art2:new"
    assert engine.search_sentences(["zebra"], 5)[0][0] == "art2:new"
    assert not engine.scores_for(tokenize([old[0].text])[0], [c.id for c in old])


def test_a_write_that_failed_between_the_two_commits_is_redone_by_the_next_apply(
        tmp_path: Path, corpus: list[LexicalChunk], monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _fresh(tmp_path, corpus)
    old = [c for c in corpus if c.article_id == "art2"]
    new = LexicalChunk("art2:new", "art2", "cnn", 1_700_000_000, "Zebra", "Zebras crossed.",
                       (("Zebras crossed.", "fact"),))

    def broken(chunks: Sequence[LexicalChunk]) -> None:
        raise RuntimeError("crash after the sentence commit")

    monkeypatch.setattr(TantivyEngine, "_chunk_docs", staticmethod(broken))
    with pytest.raises(RuntimeError):
        engine.apply([new])
    engine.reload()
    assert engine.search_sentences(["zebra"], 5) and not engine.search_chunks(["zebra"], 5)  # out of step
    monkeypatch.undo()
    assert engine.apply([new]) == 1  # the chunk index still holds the old digests: the article is redone
    assert engine.search_chunks(["zebra"], 5)[0][0] == engine.search_sentences(["zebra"], 5)[0][0] == "art2:new"
    sentences = sum(len(c.sentences) for c in corpus) - sum(len(c.sentences) for c in old) + 1
    assert engine._sentences.searcher().num_docs == sentences  # nothing indexed twice


def test_an_index_of_another_format_is_refused(tmp_path: Path) -> None:
    TantivyEngine.open(tmp_path)
    (tmp_path / "engine.json").write_text(json.dumps({"format": 0}))
    with pytest.raises(NewsbotError, match="format 0"):
        TantivyEngine.open(tmp_path)


def _child(code: str, path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = ("import sys, json; from pathlib import Path\n"
              "from index.lexical_engine import TantivyEngine, LexicalChunk\n"
              "engine = TantivyEngine.open(Path(sys.argv[1]))\n" + code)
    return subprocess.Popen([sys.executable, "-c", script, str(path), *args], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_another_process_commit_is_seen_after_reload(tmp_path: Path, corpus: list[LexicalChunk]) -> None:
    reader = TantivyEngine.open(tmp_path)
    writer = _child("chunks = [LexicalChunk(*c[:6], tuple(map(tuple, c[6]))) for c in json.load(sys.stdin)]\n"
                    "print(engine.apply(chunks))", tmp_path)
    out, _ = writer.communicate(json.dumps([[c.id, c.article_id, c.source, c.published_ts, c.title, c.text,
                                             c.sentences] for c in corpus[:10]]), timeout=60)
    assert writer.returncode == 0 and int(out) == len({c.article_id for c in corpus[:10]})
    assert len(reader) == 0  # a reader's view changes only when it reloads
    reader.reload()
    assert len(reader) == 10
    terms = tokenize(["election vote market oil"])[0]
    assert_ranking(reader.search_chunks(terms, 5), chunk_scores(corpus[:10], terms), 5)


def test_a_second_writer_waits_then_is_refused_and_writes_once_the_first_is_done(
        tmp_path: Path, corpus: list[LexicalChunk]) -> None:
    holder = _child("with engine._write_lock():\n    print('held', flush=True)\n    sys.stdin.readline()\n", tmp_path)
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"
    engine = TantivyEngine.open(tmp_path, lock_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(NewsbotError, match="being written by another process"):
        engine.apply(corpus[:3])
    assert time.monotonic() - started >= 0.3
    holder.stdin.write("done\n")
    holder.stdin.flush()
    assert holder.wait(timeout=30) == 0
    assert engine.apply(corpus[:3]) > 0 and len(engine) == 3


def test_a_second_writer_waits_for_the_first(tmp_path: Path, corpus: list[LexicalChunk]) -> None:
    holder = _child("import time\nwith engine._write_lock():\n    print('held', flush=True)\n    time.sleep(0.5)\n",
                    tmp_path)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    engine = TantivyEngine.open(tmp_path, lock_timeout=20)
    assert engine.apply(corpus[:3]) > 0 and len(engine) == 3  # serialised behind the holder
    assert holder.wait(timeout=30) == 0


def test_a_tantivy_writer_outside_the_engine_is_reported(tmp_path: Path, corpus: list[LexicalChunk]) -> None:
    holder = _child("w = engine._chunks.writer(15_000_000, 1)\nprint('held', flush=True)\nsys.stdin.readline()\n",
                    tmp_path)
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"
    engine = TantivyEngine.open(tmp_path)
    with pytest.raises(NewsbotError, match="another program"):
        engine.apply(corpus[:3])
    engine.reload()
    assert engine.search_sentences(tokenize([corpus[0].text])[0], 5) == []  # nothing half-written
    holder.stdin.write("done\n")
    holder.stdin.flush()
    assert holder.wait(timeout=30) == 0
