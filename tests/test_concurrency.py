"""Ingesting while answering on the same data dir: no errors, and no answer ever shows a half-written article.

A writer thread (its own ``App`` on the same data dir) ingests batch after batch while the main thread answers
questions about every batch with the real model and ``index_refresh_seconds=0``, so every answer sees the newest
store version. Before they start, one batch's ``newsbot ingest`` process was SIGKILLed after writing its chunks but
before committing its catalogue records: those chunks are in Chroma and must never be shown.

The same runs with writer processes: against a Chroma server, and on one embedded data dir, where a read that
collides with another process's write must not surface as an error (the retriever keeps its previous snapshot).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from index.load import article_id_for
from tests.fakes import KILLER, NEWSBOT, make_settings

BATCHES = 5
PER_BATCH = 6
POISON = 2  # this batch's process is killed between writing its chunks and committing them
CHECKED = {"answers": 0}
WORDS = ("harbour ferry council budget storm election vaccine market drought museum league bridge school court "
         "senator festival rail airport factory union tariff satellite reactor orchard").split()


def codeword(i: int) -> str:
    """A made-up word unique to article ``i`` (letters only, so BM25 keeps it whole)."""
    return "zorb" + "".join("klmnpqrstv"[int(d)] for d in str(i)) + "ax"


def write_batches(tmp: Path) -> list[tuple[Path, list[str]]]:
    rng = random.Random(3)
    out = []
    for b in range(BATCHES):
        records, ids = [], []
        for j in range(PER_BATCH):
            i = b * PER_BATCH + j
            word = codeword(i)
            sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(14, 24))).capitalize() + "."
                         for _ in range(14)]
            sentences[0] = f"The {word} affair shook the {rng.choice(WORDS)} and the {rng.choice(WORDS)} today."
            sentences[9] = f"Officials said the {word} decision would stand for the {rng.choice(WORDS)}."
            url = f"https://wire.example/{i}"
            records.append({"title": f"The {word} affair", "url": url, "source": "Test Wire",
                            "body": " ".join(sentences)})
            ids.append(article_id_for(url, "", ""))
        path = tmp / f"batch{b}.json"
        path.write_text(json.dumps(records))
        out.append((path, ids))
    return out


def test_answers_never_cite_a_half_written_article(tmp_path: Path, cli_env: dict[str, str], model_cache: Path) -> None:
    """Embedded Chroma: the writer is a thread of this process with its own App."""
    from bot.wiring import Services

    batches = write_batches(tmp_path)
    data = tmp_path / "shared-data"
    env = {**cli_env, "NEWSBOT_DATA_DIR": str(data)}
    prepare(env, batches)
    # the model the CLI used
    app = Services(make_settings(data, index_refresh_seconds=0.0, model_cache_dir=model_cache))
    writer_app = Services(make_settings(data, model_cache_dir=model_cache), embedder=app.index.embedder)

    def write(path: Path) -> None:
        report = writer_app.index.ingest(writer_app.index.load([path]))
        assert report.new == PER_BATCH and not report.errors, report

    ask_while_writing(app, batches, write)


def test_against_a_chroma_server_writer_processes_and_a_reader(tmp_path: Path, cli_env: dict[str, str],
                                                              model_cache: Path) -> None:
    """A Chroma server: the writers are ``newsbot ingest`` processes, the reader this process."""
    from bot.wiring import Services
    from tests.test_server_mode import _free_port, running_chroma

    batches = write_batches(tmp_path)
    with running_chroma(tmp_path, _free_port()) as server:
        server_env = {"NEWSBOT_CHROMA_HOST": server.host, "NEWSBOT_CHROMA_PORT": str(server.port)}
        env = {**cli_env, "NEWSBOT_DATA_DIR": str(tmp_path / "writer"), **server_env}
        prepare(env, batches)
        app = Services(make_settings(tmp_path / "reader", index_refresh_seconds=0.0, model_cache_dir=model_cache,
                                chroma_host=server.host, chroma_port=server.port))

        def write(path: Path) -> None:
            proc = subprocess.run([*NEWSBOT, "ingest", str(path)], env=env, capture_output=True, text=True,
                                  timeout=300)
            assert proc.returncode == 0 and not proc.stderr, proc.stderr

        ask_while_writing(app, batches[:POISON + 2], write)


def prepare(env: dict[str, str], batches: list[tuple[Path, list[str]]]) -> None:
    """The first batch ingested; the poison batch's process killed after its chunks, before their commit."""
    subprocess.run([*NEWSBOT, "ingest", str(batches[0][0])], env=env, check=True, capture_output=True, timeout=300)
    killed = subprocess.run([sys.executable, "-c", KILLER, "upsert", "catalogue", "1", "before", "ingest",
                             str(batches[POISON][0])], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr


def ask_while_writing(app: Any, batches: list[tuple[Path, list[str]]], write: Any) -> None:
    """Answer continuously while ``write`` ingests every batch after the first (but the poison one)."""
    writer_errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for b, (path, _) in enumerate(batches[1:], 1):
                if b != POISON:
                    write(path)
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            writer_errors.append(err)
        finally:
            done.set()

    poison = set(batches[POISON][1])
    thread = threading.Thread(target=writer)
    thread.start()
    answers: list[Any] = []
    checked_articles: set[str] = set()
    rng = random.Random(5)
    try:
        while not done.is_set() or len(answers) < 8:
            i = rng.randrange(len(batches) * PER_BATCH)
            answer = app.answerer.ask(f"What was decided about the {codeword(i)} affair?")  # raises on any error
            answers.append(answer)
            shown = {c.article_id for c in answer.citations} | {p.article_id for p in answer.passages}
            assert not shown & poison, "an uncommitted article was shown"
            catalog = app.index.store.catalog(sorted(shown))
            for aid in shown:  # every article an answer shows has its catalogue record and all its chunks
                assert aid in catalog, aid
                stored = app.index.store.get_chunks([f"{aid}:{n}" for n in range(catalog[aid].n_chunks)])
                assert len(stored) == catalog[aid].n_chunks, aid
            checked_articles |= shown
    finally:
        thread.join(timeout=300)
    assert not writer_errors, writer_errors
    assert len(answers) >= 8
    # the writes were visible while answering: the last batch is answered once it is in
    last = batches[-1][1]
    final = app.answerer.ask(f"What was decided about the {codeword((len(batches) - 1) * PER_BATCH)} affair?")
    assert final.citations and final.citations[0].article_id == last[0]
    # the poisoned batch's chunks really are in the store, yet never surfaced
    orphans = [c for c in app.index.store.iter_chunks() if c.meta.article_id in poison]
    assert orphans and not poison & set(app.index.store.catalog())
    for j in range(PER_BATCH):
        answer = app.answerer.ask(f"What was decided about the {codeword(POISON * PER_BATCH + j)} affair?")
        assert not {p.article_id for p in answer.passages} & poison
    CHECKED["answers"] += len(answers)
    print(f"\nconcurrent answers checked: {len(answers)}, articles verified complete: {len(checked_articles)}")


def test_embedded_writer_processes_and_a_running_reader(tmp_path: Path, cli_env: dict[str, str],
                                                        model_cache: Path) -> None:
    """One embedded data dir, writers in other processes: a read that collides with a write keeps the previous
    search snapshot (no error), and the reader still never shows a half-written article."""
    from bot.wiring import Services

    batches = write_batches(tmp_path)
    env = {**cli_env, "NEWSBOT_DATA_DIR": str(tmp_path / "shared")}
    prepare(env, batches)
    app = Services(make_settings(tmp_path / "shared", index_refresh_seconds=0.0, model_cache_dir=model_cache))

    def write(path: Path) -> None:
        proc = subprocess.run([*NEWSBOT, "ingest", str(path)], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and not proc.stderr, proc.stderr

    ask_while_writing(app, batches[:POISON + 2], write)
