# newsbot — every task runs inside .venv/, which `make install` creates from pyproject.toml.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
NEWSBOT := $(VENV)/bin/newsbot
SHARED ?= ../shared/data
DEMO_DIR := .newsbot-demo
EVAL_DIR ?= .newsbot-eval

.PHONY: install demo test bench bench-discord eval lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch, pinned first: an unpinned torch would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: install
	$(NEWSBOT) --data-dir $(DEMO_DIR) ingest data/
	$(NEWSBOT) --data-dir $(DEMO_DIR) ask "why did the summits fail?"

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check bot index prompts tests bench

eval: install
	$(NEWSBOT) --data-dir $(EVAL_DIR) ingest $(SHARED)/multihop-rag/corpus.json.gz
	$(NEWSBOT) --data-dir $(EVAL_DIR) eval --questions $(SHARED)/multihop-rag/dev-queries.json.gz

bench: install
	$(PY) bench/run.py --shared $(SHARED)

# 100 concurrent simulated /ask interactions against the MultiHop-RAG index (`make eval` builds it)
bench-discord: install
	$(PY) bench/discord_load.py --data-dir $(EVAL_DIR) --questions $(SHARED)/multihop-rag/dev-queries.json.gz

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(EVAL_DIR) .pytest_cache
