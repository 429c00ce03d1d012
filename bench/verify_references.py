"""FAD and SNR of a protected FSDD next to two reference degradations (issue: verify).

    python bench/verify_references.py --fsdd ../shared/data/fsdd --config default

Makes, under --work: the protected tree, a copy with white noise at 20 dB SNR per
file, and a copy low-passed at 1 kHz; runs verify on each against the original and
prints a markdown table.
"""

import argparse
import os
import sys
import time

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfiltfilt

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from efficacy_sweep import sweep_key  # noqa: E402
from poscuda_cli.protect import protect_tree  # noqa: E402
from poscuda_cli.verify import verify_trees  # noqa: E402


def degrade(src, dst, transform):
    rng = np.random.default_rng(0)
    for folder, _, names in os.walk(src):
        for name in names:
            if not name.endswith(".wav"):
                continue
            x, rate = sf.read(os.path.join(folder, name))
            out = os.path.join(dst, os.path.relpath(folder, src), name)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            sf.write(out, np.clip(transform(x, rate, rng), -1, 1), rate, subtype="PCM_16")


def white_noise_20db(x, rate, rng):
    noise = rng.standard_normal(len(x))
    return x + noise * np.sqrt(np.mean(x ** 2) / np.mean(noise ** 2) / 100)


def lowpass_1k(x, rate, rng):
    return sosfiltfilt(butter(8, 1000, fs=rate, output="sos"), x)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fsdd", default=os.path.join(os.path.dirname(__file__), "../../shared/data/fsdd"))
    parser.add_argument("--config", default="default", help="a configuration of efficacy_sweep.py (its fixed key)")
    parser.add_argument("--work", default="runs/verify")
    args = parser.parse_args()
    trees = {"protected (key)": os.path.join(args.work, "protected"),
             "white noise, 20 dB SNR": os.path.join(args.work, "noise20"),
             "low-pass 1 kHz": os.path.join(args.work, "lowpass1k")}
    protect_tree(args.fsdd, trees["protected (key)"], sweep_key(args.config), jobs=2)
    if not os.path.isdir(trees["white noise, 20 dB SNR"]):
        degrade(args.fsdd, trees["white noise, 20 dB SNR"], white_noise_20db)
    if not os.path.isdir(trees["low-pass 1 kHz"]):
        degrade(args.fsdd, trees["low-pass 1 kHz"], lowpass_1k)
    print("| PROT | FAD | mean SNR dB | median SNR dB | mean LSD dB | verify wall s (no cache) |")
    print("|---|---|---|---|---|---|")
    for name, tree in trees.items():
        started = time.perf_counter()
        summary = verify_trees(args.fsdd, tree, jobs=2).summary()
        wall = time.perf_counter() - started
        print(f"| {name} | {summary['fad']:.3f} | {summary['snr_db_mean']} | {summary['snr_db_median']} | "
              f"{summary['lsd_db_mean']} | {wall:.1f} |")


if __name__ == "__main__":
    main()
