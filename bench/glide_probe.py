"""Probe for docs/results.md: do gliding notches survive per-clip feature normalisation (cmvn)?

A fixed filter is a constant offset in log-spectral features, and cmvn subtracts each clip's
mean, so it removes most of `balanced`'s signature. This probe keeps `balanced`'s six
mel-spaced notches per label but lets every notch centre glide sinusoidally over time (a
period per label in [0.3, 1] s, a phase per notch, +-8% of the notch range), applied as a
time-varying mask in the STFT domain. It is a probe, not a filter family: `protect` cannot
make it. Rows go to bench/results/efficacy.jsonl as configuration "balanced-glide" (no defense
under "levels", defenses under "defenses"), so the report and the plot include them.

    python bench/glide_probe.py --keys 3
    python bench/glide_probe.py --keys 3 --models cnn-flat,transformer --defenses noise+specaugment+cmvn --epochs 30
"""

import argparse
import hashlib
import os
import shutil

import numpy as np
import soundfile as sf
from scipy.signal import istft, stft

from efficacy_sweep import DATA, HERE, record, training_tree, tree_quality
from poscuda_cli.audit import audit
from poscuda_cli.audit.data import labeled_files
from poscuda_cli.signature.filters import Notch
from poscuda_cli.signature.params import STRENGTHS

CONFIG = "balanced-glide"
BALANCED = STRENGTHS["balanced"]  # its notches, which glide here
SWING, PERIOD_S = 0.08, (0.3, 1.0)


def draw(rng):
    """One label's gliding notches: resting places (fractions of the mel range), period, phases."""
    return {"rest": np.sort(rng.uniform(0.0, 1.0, BALANCED.notches)), "period": rng.uniform(*PERIOD_S),
            "phase": rng.uniform(0.0, 2.0 * np.pi, BALANCED.notches)}


def glide(x, samplerate, notches, nfft=256, hop=32):
    """``x`` with the notches at their place at each STFT frame (cosine-tapered edges)."""
    freqs, times, spectrum = stft(x, samplerate, nperseg=nfft, noverlap=nfft - hop)
    place = notches["rest"][:, None] + SWING * np.sin(2 * np.pi * times / notches["period"] + notches["phase"][:, None])
    # `balanced`'s notch at each place (Notch.band works elementwise): (notches, frames) centres and widths
    centre, width = Notch(place, BALANCED.notch_low_hz, BALANCED.notch_high_hz, BALANCED.notch_width_hz,
                          BALANCED.notch_spacing).band(samplerate)
    distance = np.abs(freqs[:, None, None] - centre) / (width / 2.0)  # (bins, notches, frames)
    edge = np.clip((distance - 0.75) / 0.25, 0.0, 1.0)  # 0 inside, 1 outside, cosine over the outer quarter
    gain = np.prod(0.5 - 0.5 * np.cos(np.pi * edge), axis=1)
    return istft(spectrum * gain, samplerate, nperseg=nfft, noverlap=nfft - hop)[1][:len(x)]


def protect(train, out, files, filters):
    for rel, label in files:
        x, samplerate = sf.read(os.path.join(train, rel), dtype="float64")
        y = np.clip(np.rint(glide(x, samplerate, filters[label]) * 32768), -32768, 32767).astype(np.int16)
        os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
        sf.write(os.path.join(out, rel), y, samplerate, subtype="PCM_16")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--models", default="cnn-avg,cnn-flat,transformer")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--defenses", default="none,cmvn", help="comma-separated, as for efficacy_sweep.py")
    parser.add_argument("--work", default="runs/sweep")
    parser.add_argument("--out", default=os.path.join(HERE, "results/efficacy.jsonl"))
    args = parser.parse_args()
    args.data = "fsdd"
    root, split, _ = DATA["fsdd"]
    train = training_tree(root, split, os.path.join(args.work, "fsdd"))
    files = labeled_files(train)
    labels = sorted({label for _, label in files})
    defenses = tuple(args.defenses.split(","))
    fingerprints, quality = [], []
    for number in range(args.keys):
        seed = hashlib.sha256(f"poscuda-results:{CONFIG}:{number}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(seed[:8], "little"))
        filters = {label: draw(rng) for label in labels}
        out = os.path.join(args.work, "fsdd", f"{CONFIG}-{number}-{os.getpid()}")
        shutil.rmtree(out, ignore_errors=True)
        protect(train, out, files, filters)
        fingerprints.append(seed[:8].hex())
        quality.append(tree_quality(train, out))
        result = audit(root, protected_dir=out, split=split, models=args.models.split(","),
                       defenses=defenses, epochs=args.epochs, baseline=False)
        shutil.rmtree(out)
        for run in result.runs:
            run.version = f"key {number + 1}"
        for defense in defenses:
            experiment = "levels" if defense == "none" else "defenses"
            runs = [run for run in result.runs if run.defense == defense]
            record(args, experiment, CONFIG, fingerprints, runs, quality)
            print(experiment, CONFIG, f"key {number}", quality[-1],
                  {run.model: f"{run.test_accuracy:.1%}" for run in runs}, flush=True)


if __name__ == "__main__":
    main()
