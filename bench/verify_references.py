"""Calibrate verify's numbers: every metric for protection and for degradations a reader knows.

For a dataset (FSDD at 8 kHz, or the 16 kHz spoken-word set of bench/speech16k.py) it makes,
under --work: the protected tree for each strength level and the paper's preset (a fixed key
each), and copies with white noise at 10/20/30 dB SNR per file, a 1 kHz low-pass (8th-order
Butterworth, zero phase) and MP3 at 32 kbit/s (constant bit rate, through libsndfile); then
runs ``poscuda verify --perceptual all`` logic on each against the original and prints a
markdown table (docs/verify.md) and the JSON rows.

    python bench/verify_references.py --data fsdd
    python bench/verify_references.py --data speech16k       # builds the set first (espeak-ng, flite)
    python bench/verify_references.py --data speech16k --every 4   # a quarter of the files, 4x faster
"""

import argparse
import hashlib
import io
import json
import os
import sys
import time

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfiltfilt

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from poscuda_cli.key import Key  # noqa: E402
from poscuda_cli.signature.params import PRESETS, STRENGTHS  # noqa: E402
from poscuda_cli.protect import protect_tree  # noqa: E402
from poscuda_cli.verify import Plan, verify_trees  # noqa: E402

DATA = {"fsdd": os.path.join(HERE, "../../shared/data/fsdd"), "speech16k": "runs/speech16k"}


def degrade(src, dst, transform):
    """A copy of ``src`` with every WAV passed through ``transform(x, rate, rng)``, as PCM_16."""
    if os.path.isdir(dst):
        return dst
    rng = np.random.default_rng(0)
    for folder, _, names in sorted(os.walk(src)):
        for name in sorted(names):
            if name.endswith(".wav"):
                x, rate = sf.read(os.path.join(folder, name))
                out = os.path.join(dst, os.path.relpath(folder, src), name)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                sf.write(out, np.clip(transform(x, rate, rng), -1, 1), rate, subtype="PCM_16")
    return dst


def white_noise(snr_db):
    def add(x, rate, rng):
        noise = rng.standard_normal(len(x))
        return x + noise * np.sqrt(np.mean(x ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return add


def lowpass_1k(x, rate, rng):
    return sosfiltfilt(butter(8, 1000, fs=rate, output="sos"), x)


def mp3(kbps):
    levels = {}

    def code(x, rate, rng):
        if rate not in levels:
            levels[rate] = _level_for(kbps, rate)
        buffer = io.BytesIO()
        sf.write(buffer, x, rate, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT",
                 compression_level=levels[rate])
        buffer.seek(0)
        return _aligned(sf.read(buffer)[0], x)
    return code


def _aligned(decoded, x, max_delay=4096):
    """``decoded`` moved back by the encoder + decoder delay (the lag, 0 to ``max_delay`` samples,
    that best matches ``x``) and cut or padded to ``len(x)``: unaligned, a 16 kHz decode scores as noise."""
    from scipy.signal import correlate

    padded = np.pad(decoded, (0, max(0, len(x) + max_delay - len(decoded))))[:len(x) + max_delay]
    delay = int(np.argmax(correlate(padded, x, mode="valid", method="fft")))
    return padded[delay:delay + len(x)]


def _level_for(kbps, rate):
    """The libsndfile compression level whose constant bit rate is closest to ``kbps`` at ``rate``."""
    probe = np.random.default_rng(1).standard_normal(rate * 4) * 0.1
    best = None
    for level in np.arange(0.0, 1.0, 0.01):
        buffer = io.BytesIO()
        try:
            sf.write(buffer, probe, rate, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT",
                     compression_level=float(level))
        except sf.LibsndfileError:
            continue
        rate_kbps = len(buffer.getvalue()) * 8 / 4 / 1000
        if best is None or abs(rate_kbps - kbps) < abs(best[1] - kbps):
            best = (float(level), rate_kbps)
    return best[0]


def every_nth(src, dst, n):
    """A tree of hard links to every ``n``-th WAV (in name order) of each folder of ``src``."""
    for folder, _, names in sorted(os.walk(src)):
        for name in sorted(x for x in names if x.endswith(".wav"))[::n]:
            out = os.path.join(dst, os.path.relpath(folder, src), name)
            if not os.path.exists(out):
                os.makedirs(os.path.dirname(out), exist_ok=True)
                os.link(os.path.join(folder, name), out)
    return dst


def fixed_key(name, params):
    return Key(hashlib.sha256(b"poscuda-calibration:" + name.encode()).digest(), params)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=sorted(DATA), default="fsdd")
    parser.add_argument("--work", default="runs/calibration")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--every", type=int, default=1, help="measure every N-th file of each label only")
    args = parser.parse_args()
    src = DATA[args.data]
    if args.data == "speech16k":
        from speech16k import build

        build(src)
    work = os.path.join(args.work, args.data if args.every == 1 else f"{args.data}-every{args.every}")
    if args.every > 1:
        src = every_nth(src, os.path.join(work, "original"), args.every)
    trees = {}
    for level, params in STRENGTHS.items():
        trees[f"poscuda --strength {level}"] = (os.path.join(work, level), fixed_key(level, params))
    trees["poscuda --preset paper"] = (os.path.join(work, "paper"), fixed_key("paper", PRESETS["paper"]))
    for name, (dst, key) in trees.items():
        protect_tree(src, dst, key, jobs=args.jobs)
        trees[name] = dst
    for snr in (30, 20, 10):
        trees[f"white noise, {snr} dB SNR"] = degrade(src, os.path.join(work, f"noise{snr}"), white_noise(snr))
    trees["low-pass 1 kHz"] = degrade(src, os.path.join(work, "lowpass1k"), lowpass_1k)
    trees["MP3, 32 kbit/s"] = degrade(src, os.path.join(work, "mp3-32k"), mp3(32))
    plan = Plan(("pesq", "stoi", "speaker"), "mfcc", None, None)
    rows = []
    for name, tree in trees.items():
        started = time.perf_counter()
        summary = verify_trees(src, tree, plan, jobs=args.jobs, processes=True).summary()
        rows.append({"data": args.data, "tree": name, "seconds": round(time.perf_counter() - started, 1),
                     **{k: v for k, v in summary.items() if not isinstance(v, (list, dict))}})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{args.data}: | PROT | mean SNR dB | LSD dB | FAD (MFCC) | PESQ ({rows[0]['pesq_mode']}) | STOI | ESTOI "
          f"| speaker sim |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tree']} | {r['snr_db_mean']} | {r['lsd_db_mean']} | {r['fad']} | {r['pesq_mean']} | "
              f"{r['stoi_mean']} | {r['estoi_mean']} | {r['speaker_similarity_mean']} |")
    measured = rows[0]
    print(f"\n{measured['files']} files; PESQ measured on {measured['pesq_measured']}, STOI on "
          f"{measured['stoi_measured']} (too short for the rest)")


if __name__ == "__main__":
    main()
