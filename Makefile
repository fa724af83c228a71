# Two commands work on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= ./siftline-data
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup serve serve-postgres test lint typecheck check fuzz bench-embed bench-ingest bench-load bench-load-beir bench-records bench-quality bench-scale bench-ann bench-cache bench-learned bench-peers bench-bm25 bench-scifact bench-ui ui-screenshots clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## Create the virtual environment and install Siftline with its test tools

serve: setup ## Start Siftline on the embedded default (SQLite in $(DATA_DIR))
	$(BIN)/siftline serve --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

serve-postgres: setup ## Try Siftline on PostgreSQL: a local PostgreSQL 18 + pgvector (pip) in ./siftline-pg
	$(BIN)/siftline serve-postgres --pg-dir ./siftline-pg --host $(HOST) --port $(PORT)

test: setup ## Run the whole test suite, then the API suites again on a local PostgreSQL
	$(BIN)/python -m pytest
	SIFTLINE_TEST_STORAGE=postgres $(BIN)/python -m pytest tests/api

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

check: lint typecheck test

fuzz: setup ## Fuzz every operation of the API (schemathesis, 200 examples each) over seeded resources
	SIFTLINE_FUZZ_EXAMPLES=$${SIFTLINE_FUZZ_EXAMPLES:-200} $(BIN)/python -m pytest tests/fuzz -s -o addopts="-q"

bench-embed: setup ## Query-embedding latency of the built-in model
	$(BIN)/python benchmarks/embed_latency.py

bench-ingest: setup ## Ingest docs/s with embedding and with supplied vectors
	$(BIN)/python benchmarks/ingest.py

bench-load: setup ## 50 clients x 60 s mixed load (search/write/read), every write checked (ARGS="--clients 20 --seconds 30")
	$(BIN)/python benchmarks/load.py $(ARGS)

bench-load-beir: setup ## `siftline load` of ../shared/data/scifact into a fresh data directory
	$(BIN)/python benchmarks/load_beir.py

bench-records: setup ## Cost of execution records (recording on vs off, same process)
	$(BIN)/python benchmarks/records.py

bench-ui: setup ## Server time of the /ui pages (an execution of 500 documents with lineage), in process
	$(BIN)/python benchmarks/ui_render.py $(ARGS)

ui-screenshots: setup ## Screenshots of /ui into docs/img (a real server, Debian's chromium-headless-shell)
	$(BIN)/python benchmarks/ui_screenshots.py $(ARGS)

bench-quality: setup ## nDCG@10 on SciFact through the HTTP API beside direct library runs (~16 min)
	$(BIN)/python benchmarks/quality.py

bench-scale: setup ## Ingest, time until indexed, latency, recall@10, RSS at scale (ARGS="--docs 100000")
	$(BIN)/python benchmarks/scale.py $(ARGS)

bench-ann: setup ## faiss vs hnswlib (if installed) on the scale benchmark's vectors: build, latency, recall, filters
	$(BIN)/python benchmarks/ann_choice.py $(ARGS)

bench-cache: setup ## Result cache MISS vs HIT on SciFact hybrid; optimizer on vs off at 100k (ARGS="--docs 10000")
	$(BIN)/python benchmarks/cache_optimizer.py $(ARGS)

bench-learned: setup ## Learned fusion from simulated clicks on SciFact vs RRF and weighted (ARGS="--seeds 5")
	$(BIN)/python benchmarks/learned_fusion.py $(ARGS)

bench-peers: setup ## Siftline vs LanceDB, PostgreSQL + pgvector and faiss on the same data (ARGS="--docs 100000")
	$(BIN)/python benchmarks/peers.py $(ARGS)

bench-bm25: setup ## BM25 engines (FTS5, tantivy, Siftline's TextIndex, bm25s if installed): SciFact nDCG, latency, writes (ARGS="--docs 1000000")
	$(BIN)/python benchmarks/bm25_engines.py $(ARGS)

bench-scifact: setup ## SciFact over HTTP: hybrid p50 and BM25 nDCG@10 (corpus embeddings cached in ~/.cache/siftline-bench)
	$(BIN)/python benchmarks/scifact_speed.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
