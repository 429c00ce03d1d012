# Set-up and everyday commands. `make example` then `make test` is all a fresh clone needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# audit's attacker models need torch (CI passes TORCH=torch==2.13.0, a CPU build); --executor dask needs dask.
TORCH ?= torch
STAMP := $(VENV)/.installed

.PHONY: install install-extras example test test-fast bench results clean

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

install-extras: $(STAMP)
	$(BIN)/python -m pip install -q '$(TORCH)' -e '.[audit,dask,test]'

example: $(STAMP)
	$(BIN)/poscuda keygen --force -o example-key.json
	$(BIN)/poscuda protect examples/speech example-out --key example-key.json --force
	$(BIN)/poscuda verify examples/speech example-out --cache none
	@ls -R example-out

test: $(STAMP)
	$(BIN)/python -m pytest -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/bench_protect.py

clean:
	rm -rf example-out example-key.json build *.egg-info .pytest_cache
