"""Efficacy measurements for docs/results.md: strength levels x keys x attackers, defenses,
unseen speakers, unseen speech, the paper's setting, learned filters.

Every configuration is measured with several keys (one key is one draw); each key's secret is
derived from the configuration's name and its number, so every figure can be reproduced.
Rows go to bench/results/efficacy.jsonl, one per training run, with the key's quality
(mean SNR, LSD, FAD and PESQ as ``poscuda verify`` computes them on the protected training set).

    python bench/efficacy_sweep.py levels --configs gentle,balanced,strong,paper --keys 3
    python bench/efficacy_sweep.py defenses --configs balanced --keys 3
    python bench/efficacy_sweep.py speakers --configs balanced --keys 3
    python bench/efficacy_sweep.py levels --data speech16k --configs balanced --keys 3
    python bench/efficacy_sweep.py fitted --fit-snr 15 --keys 3
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from poscuda_cli.audit import audit  # noqa: E402
from poscuda_cli.audit.defenses import applies_to  # noqa: E402
from poscuda_cli.audit.data import labeled_files, read_clips  # noqa: E402
from poscuda_cli.audit.models import INPUTS, SCRATCH  # noqa: E402
from poscuda_cli.key import Key  # noqa: E402
from poscuda_cli.labels import PatternLabels  # noqa: E402
from poscuda_cli.signature.params import PRESETS, STRENGTHS  # noqa: E402
from poscuda_cli.protect import protect_tree  # noqa: E402
from poscuda_cli.verify import Plan, verify_trees  # noqa: E402

DATA = {  # root, standard test split, speaker groups
    "fsdd": (os.path.join(HERE, "../../shared/data/fsdd"), r"_[0-4]\.wav$", r"^\d_([a-z]+)_"),
    "speech16k": ("runs/speech16k", r"_(en-029|rms)[-_]", None),
    "fsdd-speakers": (os.path.join(HERE, "../../shared/data/fsdd"), r"_[0-4]\.wav$", None),
}
# Where the label is not a file's folder: FSDD labelled by speaker (6 labels), docs/usage.md's recipe
LABELS = {"fsdd-speakers": r"^\d/\d_([a-z]+)_"}


def labels_of(data):
    return PatternLabels(LABELS[data]) if data in LABELS else None
MODELS = tuple(SCRATCH)
QUALITY = ("snr_db", "lsd_db", "fad", "pesq", "pesq_mode")


def config_params(name):
    """A strength level, the paper's preset, or 'level+name=value+...' for a variation of one."""
    base, *changes = name.split("+")
    params = PRESETS[base] if base in PRESETS else STRENGTHS[base]
    return params.with_overrides(changes)


def keys_for(config, count, params=None):
    params = params or config_params(config)
    return [Key(hashlib.sha256(f"poscuda-results:{config}:{k}".encode()).digest(), params) for k in range(count)]


def training_tree(root, split, work):
    """The training files only, hard-linked under ``work``: the test split stays clean."""
    train = os.path.join(work, "train")
    if not os.path.isdir(train):
        for rel, _ in labeled_files(root, split, test=False):
            os.makedirs(os.path.dirname(os.path.join(train, rel)), exist_ok=True)
            try:
                os.link(os.path.join(root, rel), os.path.join(train, rel))
            except OSError:  # another file system
                shutil.copy2(os.path.join(root, rel), os.path.join(train, rel))
    return train


def tree_quality(train, protected, jobs=2):
    """Quality of a protected training set, as ``poscuda verify --perceptual pesq`` reports it."""
    summary = verify_trees(train, protected, Plan(("pesq",)), jobs=jobs, processes=True).summary()
    return {"snr_db": summary["snr_db_mean"], "lsd_db": summary["lsd_db_mean"], "fad": summary["fad"],
            "pesq": summary["pesq_mean"], "pesq_mode": summary["pesq_mode"]}


def key_quality(root, split, key, work, labels=None, jobs=2):
    """Quality of the training set as ``key`` protects it (``labels``: a label source, default folders)."""
    train = training_tree(root, split, work)
    protected = os.path.join(work, f"protected-{key.fingerprint}-{os.getpid()}")  # sweeps may run side by side
    shutil.rmtree(protected, ignore_errors=True)
    protect_tree(train, protected, key, jobs=jobs, labels=labels)
    quality = tree_quality(train, protected, jobs)
    shutil.rmtree(protected)
    return quality


def record(args, experiment, config, fingerprints, runs, quality):
    """Append one row per audit run (key number instead of 'key N'), with that key's quality."""
    rows = []
    for run in runs:
        number = int(run.version.split()[1]) - 1 if run.version.startswith("key") else None
        rows.append({"experiment": experiment, "data": args.data, "config": config, "epochs": args.epochs,
                     "model": run.model, "shift": run.shift, "defense": run.defense, "fold": run.fold,
                     "key": number, "fingerprint": fingerprints[number] if number is not None else None,
                     "test_accuracy": round(run.test_accuracy, 4), "train_accuracy": round(run.train_accuracy, 4),
                     **(quality[number] if number is not None else {})})
    with open(args.out, "a") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    return rows


def recorded(args):
    """The rows recorded so far."""
    if not os.path.exists(args.out):
        return []
    with open(args.out) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def have_baseline(rows, args, experiment, models, defenses):
    """Whether clean-trained runs of this experiment, data and length are recorded already for every
    model and defense."""
    done = {(r["model"], r["defense"]) for r in rows if r["experiment"] == experiment and r["data"] == args.data
            and r["epochs"] == args.epochs and r["key"] is None}
    return {(m, d) for m in models for d in defenses if applies_to(d, INPUTS[m])} <= done


def quality_of(rows, args, key, root, split):
    """A key's quality as recorded by an earlier run on this data, else measured now."""
    for r in rows:
        if r["data"] == args.data and r["fingerprint"] == key.fingerprint and r.get("snr_db") is not None:
            return {q: r[q] for q in QUALITY}
    return key_quality(root, split, key, os.path.join(args.work, args.data), labels_of(args.data))


def run(args, experiment, config, keys, models, defenses=("none",), groups=None, shift=0.0):
    root, split, _ = DATA[args.data]
    started = time.perf_counter()
    earlier = recorded(args)
    quality = [quality_of(earlier, args, key, root, split) for key in keys]
    baseline = experiment != "fitted" and not have_baseline(earlier, args, experiment, models, defenses)  # fitted: levels' runs
    result = audit(root, split=None if groups else split, groups=groups, keys=keys, models=models,
                   defenses=defenses, epochs=args.epochs, shift=shift, baseline=baseline, labels=labels_of(args.data))
    rows = record(args, experiment, config, [key.fingerprint for key in keys], result.runs, quality)
    for row in result.rows:
        print(f"{experiment} {args.data} {config} {row.model} shift={row.shift:g} {row.defense}: clean "
              f"{row.clean_accuracy:.1%} protected {row.protected_accuracy:.1%} [{row.protected_min:.1%}-"
              f"{row.protected_max:.1%}] ({time.perf_counter() - started:.0f} s)", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=("levels", "defenses", "speakers", "fitted"))
    parser.add_argument("--data", choices=sorted(DATA), default="fsdd")
    parser.add_argument("--configs", default="gentle,balanced,strong")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--shift", type=float, default=0.2, help="levels: also train with time shifts")
    parser.add_argument("--defenses", default="eq,bandstop,noise,specaugment,cmvn,mp3,ogg,resample8k")
    parser.add_argument("--fit-snr", type=float, default=15.0)
    parser.add_argument("--fit-stages", type=int, default=8)
    parser.add_argument("--work", default="runs/sweep")
    parser.add_argument("--out", default=os.path.join(HERE, "results/efficacy.jsonl"))
    args = parser.parse_args()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    if args.data == "speech16k":
        from speech16k import build

        build(DATA["speech16k"][0])
    models = args.models.split(",")
    for config in args.configs.split(","):
        if args.experiment == "levels":
            run(args, "levels", config, keys_for(config, args.keys), models, shift=args.shift)
        elif args.experiment == "defenses":
            defenses = tuple(d for d in args.defenses.split(",") if not (d == "resample8k" and args.data == "fsdd"))
            run(args, "defenses", config, keys_for(config, args.keys), models, defenses=defenses)
        elif args.experiment == "speakers":
            run(args, "speakers", config, keys_for(config, args.keys), models, groups=DATA[args.data][2])
    if args.experiment == "fitted":
        fitted_versus_random(args, models)


def fitted_versus_random(args, models):
    """Learned curves (one fit per key) against random notches at the same SNR budget."""
    from poscuda_cli.audit.fit import fit

    root, split, _ = DATA[args.data]
    clips = read_clips(root, [f for f in labeled_files(root) if not re.search(split, os.path.basename(f[0]))])
    params = STRENGTHS["balanced"].with_overrides([f"fit_snr_db={args.fit_snr:g}"])
    keys, reports = [], []
    for number, key in enumerate(keys_for(f"fitted-{args.fit_snr:g}", args.keys, params)):
        report = fit(clips, params, stages=args.fit_stages, seed=number)
        keys.append(Key(key.secret, key.params, report.fitted))
        reports.append({"surrogate_fit": report.surrogate_fit, "surrogate_clean": report.surrogate_clean})
        print(json.dumps({"fit": number, **reports[-1]}), flush=True)
    run(args, "fitted", f"fitted-snr{args.fit_snr:g}", keys, models)


if __name__ == "__main__":
    main()
