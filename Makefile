# retain: two commands for a fresh clone.
#   make demo   set up, generate sample data, run the whole pipeline, serve the dashboard
#   make test   set up, run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_CUSTOMERS ?= 20000
DEMO_SEED ?= 7
# Python's bytecode cache on for everything make starts, even where the environment turns it
# off: otherwise every process compiles each module it imports from source, about 12 s of a
# 45 s `retain run` on a small shop (pipelines/__init__.py does the same for `retain` itself)
unexport PYTHONDONTWRITEBYTECODE
# make test runs the test files in this many processes (pytest-xdist)
TEST_WORKERS ?= 2

.PHONY: setup demo test lint bench clean

# --no-compile: Python compiles a module to bytecode the first time it is imported, so only
# what retain uses is compiled (pip would compile every file of every package: 41 s -> 18 s)
$(BIN)/retain: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-compile --no-deps -e .
	touch $(BIN)/retain

setup: $(BIN)/retain

demo: setup
	$(BIN)/retain generate --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --clean
	$(BIN)/retain run
	$(BIN)/retain dashboard

# --durations: the 25 slowest test phases at the end of the output, to see where the time goes
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python -m bench.run --sizes S

clean:
	rm -rf $(VENV) target logs .pytest_cache
