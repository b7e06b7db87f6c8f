# Every target creates .venv when it is missing, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Offline always: nothing downloads weights or data at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-sqlite test-postgres test-slow test-slow-sqlite test-slow-postgres bench bench-mnist bench-proben1 bench-flowers bench-throughput bench-service bench-quality bench-reports clean

$(BIN)/genaug: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(BIN)/genaug

demo: $(BIN)/genaug  ## train a VAE on sklearn's digits and print whether it helps a classifier
	$(BIN)/genaug demo --out demo-output

# The suite runs twice: against the default SQLite file, then against a throwaway PostgreSQL
# server (tests/_postgres.py). The PostgreSQL server binaries and chromium (browser tests) are
# installed first when this user may (root, or sudo without a password); otherwise the run
# ends with one line saying what did not run. -ra lists every skip with its reason.
# Two pytest-xdist workers: much of the suite waits on servers, browsers and child processes, so
# two workers on two cores cut the idle run by about a third. --dist loadscope keeps each module
# on one worker, so a module's service, database or fitted model is made once. TEST_WORKERS=0
# runs everything in this one process (e.g. to read a test's output in order).
TEST_WORKERS ?= 2
PYTEST_SERIAL := $(BIN)/pytest -q -ra
PYTEST := $(PYTEST_SERIAL) -n $(TEST_WORKERS) --dist loadscope
PG_TEST := GENAUG_TEST_DATABASE=postgresql
DEPS := scripts/test-system-deps

test: $(BIN)/genaug  ## the default test suite (slow tests excluded), on SQLite and on PostgreSQL
	@$(DEPS) ensure
	@status=0; \
	$(MAKE) --no-print-directory test-sqlite || status=1; \
	if $(DEPS) have postgresql; then $(MAKE) --no-print-directory test-postgres || status=1; fi; \
	left="$$($(DEPS) missing)"; \
	case " $$left " in *" postgresql "*) echo "make test: the PostgreSQL run did not run (no PostgreSQL server binaries; sudo apt-get install -y postgresql enables it)";; esac; \
	case " $$left " in *" chromium "*) echo "make test: the browser tests were skipped (no chromium; sudo apt-get install -y chromium enables them)";; esac; \
	exit $$status

test-sqlite: $(BIN)/genaug  ## the default test suite on SQLite only
	$(PYTEST)

test-postgres: $(BIN)/genaug  ## the default test suite on PostgreSQL only
	$(PG_TEST) $(PYTEST) -m 'not slow and not sqlite_only'

test-slow: test-slow-sqlite test-slow-postgres  ## only the slow tests, on SQLite and on PostgreSQL

test-slow-sqlite: $(BIN)/genaug
	$(PYTEST_SERIAL) -m slow

test-slow-postgres: $(BIN)/genaug
	$(PG_TEST) $(PYTEST_SERIAL) -m 'slow and not sqlite_only'

bench: bench-throughput bench-service bench-mnist bench-proben1 bench-flowers bench-quality  ## seed 001/002 reproductions (resumable; days on a CPU)

bench-mnist: $(BIN)/genaug
	$(BIN)/python bench/mnist_fewshot.py

bench-proben1: $(BIN)/genaug
	$(BIN)/python bench/proben1.py

bench-flowers: $(BIN)/genaug
	$(BIN)/python bench/flowers.py

bench-quality: $(BIN)/genaug  ## issue 14: quality vs utility and the filter ablation (MNIST), the card's cost, near-copy detection
	$(BIN)/python bench/quality_utility.py
	$(BIN)/python bench/quality_card.py
	$(BIN)/python bench/near_copy.py

bench-throughput: $(BIN)/genaug
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/lite0_precision.py

bench-reports: $(BIN)/genaug  ## rewrite the MNIST and flowers reports from what is cached (computes nothing)
	$(BIN)/python bench/mnist_fewshot.py --cached-only
	$(BIN)/python bench/flowers.py --report-only

bench-service: $(BIN)/genaug  ## upload of 3 camera-sized JPEGs, 50 concurrent generate requests, worker SIGKILL
	$(BIN)/python bench/service.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
