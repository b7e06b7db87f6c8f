# Every target creates .venv when it is missing, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Offline always: nothing downloads weights or data at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-slow bench bench-mnist bench-proben1 bench-flowers bench-throughput clean

$(BIN)/genaug: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(BIN)/genaug

demo: $(BIN)/genaug  ## train a VAE on sklearn's digits and print whether it helps a classifier
	$(BIN)/genaug demo --out demo-output

test: $(BIN)/genaug  ## the default test suite (slow tests excluded)
	$(BIN)/pytest -q

test-slow: $(BIN)/genaug  ## only the slow tests
	$(BIN)/pytest -q -m slow

bench: bench-throughput bench-mnist bench-proben1 bench-flowers  ## seed 001/002 reproductions (resumable; days on a CPU)

bench-mnist: $(BIN)/genaug
	$(BIN)/python bench/mnist_fewshot.py

bench-proben1: $(BIN)/genaug
	$(BIN)/python bench/proben1.py

bench-flowers: $(BIN)/genaug
	$(BIN)/python bench/flowers.py

bench-throughput: $(BIN)/genaug
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
