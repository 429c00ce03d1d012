"""Efficacy sweep: protect FSDD with each configuration, then audit it (docs/results.md).

Each configuration gets a fixed secret derived from its name, so every number is
reproducible. Results are appended as JSON lines to bench/results/efficacy.jsonl.

    python bench/efficacy_sweep.py --fsdd ../shared/data/fsdd --configs paper,default \
        --models cnn-avg,raw,lstm --epochs 12
"""

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from poscuda_cli import audio  # noqa: E402
from poscuda_cli.audit import evaluate, load_split  # noqa: E402
from poscuda_cli.key import Key  # noqa: E402
from poscuda_cli.verify.metrics import log_spectral_distance, snr_db  # noqa: E402
from poscuda_cli.params import PRESETS, Params  # noqa: E402
from poscuda_cli.protect import protect_tree  # noqa: E402
from poscuda_cli.verify import verify_trees  # noqa: E402

SPLIT = r"_[0-4]\.wav$"  # FSDD's standard split: recordings 0-4 are the test set

CONFIGS = {
    "paper": PRESETS["paper"].to_dict(),
    "default": PRESETS["default"].to_dict(),
}


def add(name, **changes):
    """A configuration: the default parameters with ``changes`` (the notch range always explicit)."""
    CONFIGS[name] = {**Params().to_dict(), **changes}


add("bs3-w200-1500-3700", notches=3, notch_width_hz=200, notch_low_hz=1500, notch_high_hz=3700)
add("bs3-w500-d0.5-1500-3700", notches=3, notch_width_hz=500, depth=0.5, notch_low_hz=1500, notch_high_hz=3700)
add("bs2-w200-500-3500", notches=2, notch_width_hz=200, notch_low_hz=500, notch_high_hz=3500)
add("bs3-w250-1000-3800", notches=3, notch_width_hz=250, notch_low_hz=1000, notch_high_hz=3800)
add("bs3-w400-2000-3800", notches=3, notch_width_hz=400, notch_low_hz=2000, notch_high_hz=3800)
add("bs2-w300-1000-3800", notches=2, notch_width_hz=300, notch_low_hz=1000, notch_high_hz=3800)
add("default-tile-50-of-100ms", layout="tile", patch_ms=50, period_min_ms=80, period_max_ms=120)

def quality(src, dst, files):
    """Mean SNR (dB) and log-spectral distance (dB) over ``files``."""
    def one(rel):
        x, info = audio.read(os.path.join(src, rel))
        y, _ = audio.read(os.path.join(dst, rel))
        scale = float(np.iinfo(x.dtype).max + 1) if np.issubdtype(x.dtype, np.integer) else 1.0
        return snr_db(x, y), log_spectral_distance(x / scale, y / scale, info.samplerate)

    with ThreadPoolExecutor() as pool:
        values = np.array(list(pool.map(one, files)))
    finite = values[np.isfinite(values[:, 0]), 0]
    return float(finite.mean()), float(values[:, 1].mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fsdd", default=os.path.join(os.path.dirname(__file__), "../../shared/data/fsdd"))
    parser.add_argument("--configs", default="paper,default")
    parser.add_argument("--models", default="cnn-avg,raw,lstm")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--shift", type=float, default=0.0)
    parser.add_argument("--work", default="runs")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results/efficacy.jsonl"))
    parser.add_argument("--backfill-fad", action="store_true",
                        help="Only add FAD to earlier rows that lack it (re-protecting where needed).")
    args = parser.parse_args()
    if args.backfill_fad:
        return backfill_fad(args)
    models = args.models.split(",")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    clean_results = None
    for name in args.configs.split(","):
        started = time.perf_counter()
        dst = protected_tree(args, name)
        labels, clean, protected, test = load_split(args.fsdd, dst, split=SPLIT)
        train_files = [os.path.relpath(p, args.fsdd) for p in sorted(_wavs(args.fsdd)) if not _is_test(p)]
        snr, lsd = quality(args.fsdd, dst, train_files)
        fad = verify_trees(args.fsdd, dst, jobs=2).fad
        if clean_results is None:
            clean_results = _clean_baseline(args, clean, test, labels, models)
        results = evaluate(protected, test, len(labels), models, args.epochs, shift=args.shift)
        row = {"config": name, "params": CONFIGS[name], "epochs": args.epochs, "snr_db": round(snr, 2),
               "lsd_db": round(lsd, 2), "fad": round(fad, 3), "seconds": round(time.perf_counter() - started)}
        for (model, shift), (fit, accuracy) in results.items():
            tag = model + (f"+shift{shift:g}" if shift else "")
            row[tag] = round(accuracy * 100, 1)
            row[tag + ":fit"] = round(fit * 100, 1)
            row[tag + ":clean"] = round(clean_results[model, shift][1] * 100, 1)
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as handle:
            handle.write(json.dumps(row) + "\n")


def sweep_key(name):
    """Configuration ``name``'s fixed key: every number in docs/results.md can be reproduced."""
    return Key(hashlib.sha256(b"poscuda-sweep:" + name.encode()).digest(), Params.from_dict(CONFIGS[name]))


def protected_tree(args, name):
    """Protect FSDD with configuration ``name``'s key into the work folder; returns its path."""
    dst = os.path.join(args.work, name)
    protect_tree(args.fsdd, dst, sweep_key(name), jobs=2)
    return dst


def backfill_fad(args):
    with open(args.out) as handle:
        rows = [json.loads(line) for line in handle]
    for row in rows:
        if "fad" not in row:
            row["fad"] = round(verify_trees(args.fsdd, protected_tree(args, row["config"]), jobs=2).fad, 3)
            print(row["config"], row["fad"], flush=True)
    with open(args.out, "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def _clean_baseline(args, clean, test, labels, models):
    """Clean-trained accuracies, cached beside the results (they do not depend on the config)."""
    path = os.path.join(os.path.dirname(args.out), f"clean-e{args.epochs}-s{args.shift:g}.json")
    cached = json.load(open(path)) if os.path.exists(path) else {}
    missing = [m for m in models if m not in cached]
    if missing:
        for (model, shift), result in evaluate(clean, test, len(labels), missing, args.epochs,
                                               shift=args.shift).items():
            cached.setdefault(model, {})[f"{shift:g}"] = result
        with open(path, "w") as handle:
            json.dump(cached, handle, indent=1)
    return {(m, s): cached[m][f"{s:g}"] for m in models for s in sorted({0.0, args.shift})}


def _wavs(root):
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".wav"):
                yield os.path.join(folder, name)


def _is_test(path):
    import re

    return re.search(SPLIT, os.path.basename(path)) is not None


if __name__ == "__main__":
    main()
