# Set-up and everyday commands. `make example` then `make test` is all a fresh clone needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# audit's attacker models and the quality extra need torch (CI passes TORCH=torch==2.13.0, a CPU build);
# --executor dask needs dask; verify --perceptual/--report need the quality extra.
TORCH ?= torch
STAMP := $(VENV)/.installed

.PHONY: install install-extras example test test-fast bench results clean

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

install-extras: $(STAMP)
	$(BIN)/python -m pip install -q '$(TORCH)' -e '.[audit,dask,quality,test]'

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
	$(BIN)/python bench/bench_protect.py --clips 1000 --long 2 --long-minutes 5

# docs/results.md's measurements (about 2 hours on 2 cores; needs make install-extras, FSDD and espeak-ng)
SWEEP := $(BIN)/python bench/efficacy_sweep.py
results: $(STAMP)
	$(SWEEP) --epochs 12 --configs bs3-w200-1500-3700
	$(SWEEP) --epochs 10 --configs bs3-w500-d0.5-1500-3700,bs2-w200-500-3500,bs3-w250-1000-3800,bs3-w400-2000-3800,bs2-w300-1000-3800,default-tile-50-of-100ms
	$(SWEEP) --epochs 10 --shift 0.2 --models cnn-avg,cnn-flat,raw,lstm,transformer --configs default,paper
	$(SWEEP) --backfill-fad
	$(BIN)/python bench/efficacy_report.py
	$(BIN)/python bench/verify_references.py --config default
	$(BIN)/python bench/unseen_speech.py

clean:
	rm -rf example-out example-key.json build *.egg-info .pytest_cache
