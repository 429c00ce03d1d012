# Set-up and everyday commands. `make example` then `make test` is all a fresh clone needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# audit's attacker models and the quality extra need torch (CI passes TORCH=torch==2.13.0, a CPU build);
# --executor dask needs dask; verify --perceptual/--report need the quality extra; audit's
# pretrained-encoder attackers need the encoders extra; Parquet input needs formats (and the
# tests check the output with the datasets library).
TORCH ?= torch
STAMP := $(VENV)/.installed

.PHONY: install install-extras example test test-fast bench results clean

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

install-extras: $(STAMP)
	$(BIN)/python -m pip install -q '$(TORCH)' datasets -e '.[audit,encoders,dask,quality,formats,test]'

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
	$(BIN)/python bench/bench_containers.py
	$(BIN)/python bench/bench_encoders.py

# docs/results.md's and docs/verify.md's measurements: about 17 hours on 2 cores; needs
# make install-extras, FSDD beside the project, espeak-ng + flite for the 16 kHz set.
# Starts bench/results/efficacy.jsonl afresh (the committed copy is in git).
SWEEP := $(BIN)/python bench/efficacy_sweep.py
results: $(STAMP)
	rm -f bench/results/efficacy.jsonl
	$(SWEEP) levels --configs balanced --keys 3 --shift 0.2
	$(SWEEP) levels --configs strong,gentle --keys 3 --shift 0
	$(SWEEP) levels --configs balanced+notches=10+notch_width_hz=145 --keys 3 --shift 0 --models cnn-avg,cnn-flat,raw
	$(SWEEP) levels --configs strong+low_notches=4+low_notch_width_hz=100,strong+echoes=2 --keys 3 --shift 0 --models raw,cnn-avg
	$(SWEEP) levels --configs balanced+low_notches=2+depth=0.35 --keys 3 --shift 0 --models raw,cnn-avg
	$(SWEEP) levels --configs balanced+layout=tile+patch_ms=100 --keys 3 --shift 0 --models cnn-flat,transformer,cnn-avg
	$(SWEEP) defenses --configs balanced+layout=tile+patch_ms=100 --keys 3 --models cnn-flat,transformer --defenses cmvn
	$(BIN)/python bench/glide_probe.py --keys 3
	$(BIN)/python bench/glide_probe.py --keys 3 --models cnn-flat,transformer --defenses noise+specaugment+cmvn --epochs 30
	$(SWEEP) defenses --configs balanced --keys 3 --models cnn-avg,raw --defenses eq,noise,mp3,bandstop,cmvn,ogg
	$(SWEEP) defenses --configs balanced,strong --keys 3 --models cnn-flat,lstm,transformer --defenses noise
	$(SWEEP) defenses --configs balanced --keys 3 --models cnn-flat,lstm,transformer --defenses eq,mp3,bandstop,cmvn,ogg
	$(SWEEP) defenses --configs strong,gentle --keys 3 --models cnn-avg,raw --defenses noise,eq,bandstop,cmvn,mp3,ogg
	$(SWEEP) defenses --configs balanced,strong,gentle --keys 3 --models cnn-avg --defenses specaugment --epochs 30
	$(SWEEP) defenses --configs balanced,strong --keys 3 --models cnn-flat,lstm,transformer --defenses specaugment --epochs 30
	$(SWEEP) levels --configs balanced --keys 3 --shift 0 --epochs 30 --models cnn-flat,lstm,transformer
	$(SWEEP) defenses --configs balanced,strong --keys 3 --models cnn-avg,cnn-flat,lstm,transformer --defenses noise+specaugment+cmvn --epochs 30
	$(SWEEP) defenses --configs balanced,strong --keys 3 --models cnn-avg,cnn-flat,lstm,transformer --defenses noise+cmvn
	$(SWEEP) defenses --configs balanced --keys 3 --models cnn-flat,transformer --defenses noise+specaugment --epochs 30
	$(SWEEP) levels --data speech16k --configs balanced,gentle --keys 3 --shift 0
	$(SWEEP) levels --data speech16k --configs paper --keys 3 --shift 0 --models cnn-flat,transformer
	$(SWEEP) defenses --data speech16k --configs balanced --keys 3 --models cnn-avg,raw --defenses resample8k,noise
	$(SWEEP) defenses --data speech16k --configs balanced --keys 3 --models cnn-flat --defenses noise+specaugment+cmvn --epochs 30
	$(SWEEP) speakers --configs balanced --keys 3 --models cnn-avg,raw,lstm,cnn-flat,transformer
	$(SWEEP) fitted --fit-snr 15 --keys 3
	$(SWEEP) fitted --data speech16k --fit-snr 15 --keys 3
	$(SWEEP) levels --configs balanced,strong,gentle --keys 3 --shift 0 --models kws-linear,kws-mlp,speaker-linear
	$(SWEEP) defenses --configs balanced,strong,gentle --keys 3 --models cnn-flat --defenses recipe --epochs 30
	$(SWEEP) levels --data speech16k --configs balanced,strong,gentle --keys 3 --shift 0 --models kws-linear,kws-mlp,speaker-linear
	$(SWEEP) levels --data fsdd-speakers --configs balanced,strong,gentle --keys 3 --shift 0 --models speaker-linear,kws-linear,cnn-avg
	$(SWEEP) defenses --data speech16k --configs balanced,strong --keys 3 --models cnn-flat --defenses recipe --epochs 30
	rm -f bench/results/robust.jsonl
	$(BIN)/python bench/robust_probe.py oracle
	$(BIN)/python bench/robust_probe.py families --keys 3
	$(BIN)/python bench/robust_probe.py visible --keys 3
	$(BIN)/python bench/robust_probe.py push --keys 3 --steps 30
	$(BIN)/python bench/robust_probe.py poison --snr 20
	$(BIN)/python bench/robust_probe.py frontier --steps 30 && $(BIN)/python bench/robust_probe.py report --plot docs/frontier.png
	$(BIN)/python bench/transfer_probe.py --surrogates mfcc-cnn,logmel-cnn,raw-cnn,speaker --points shaped:10,shaped:5 --steps 30 --subset-surrogates
	$(BIN)/python bench/transfer_probe.py --surrogates mfcc-cnn,logmel-cnn,raw-cnn,speaker --points shaped:10,shaped:5 --steps 120 --subset-surrogates
	$(BIN)/python bench/efficacy_report.py
	$(BIN)/python bench/verify_references.py --data fsdd
	$(BIN)/python bench/verify_references.py --data speech16k --every 4

clean:
	rm -rf example-out example-key.json build *.egg-info .pytest_cache
