"""A check on speech poscuda was not tuned on: synthetic command words from espeak-ng at 16 kHz.

Ten words (yes, no, up, down, left, right, on, off, stop, go) spoken by espeak-ng voice
variants at several pitches and speeds, resampled to 16 kHz PCM_16 with a little room noise.
The test set is every clip of held-out voices (speaker-independent, like real corpora).
Protects the training set with a fixed default key and audits it.

    python bench/unseen_speech.py --work runs/espeak [--models cnn-avg,raw,lstm] [--epochs 10]

Needs the espeak-ng program (Debian: apt-get install espeak-ng) and torch.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from poscuda_cli.audit import evaluate, load_split  # noqa: E402
from poscuda_cli.key import Key  # noqa: E402
from poscuda_cli.params import Params  # noqa: E402
from poscuda_cli.protect import protect_tree  # noqa: E402
from poscuda_cli.verify import verify_trees  # noqa: E402

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
VOICES = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
VARIANTS = ("", "+m1", "+m3", "+f2", "+f4", "+m7")
HELD_OUT = ("en-029",)  # test voices


def build(root):
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for word in WORDS:
            os.makedirs(os.path.join(root, word), exist_ok=True)
            for voice in VOICES:
                for variant in VARIANTS:
                    for pitch, speed in ((35, 150), (50, 175), (70, 200)):
                        name = f"{word}_{voice}{variant.replace('+', '-')}_{pitch}_{speed}.wav"
                        out = os.path.join(root, word, name)
                        if os.path.exists(out):
                            continue
                        raw = os.path.join(tmp, "x.wav")
                        subprocess.run(["espeak-ng", "-v", voice + variant, "-p", str(pitch), "-s", str(speed),
                                        "-w", raw, word], check=True, capture_output=True)
                        x, rate = sf.read(raw)
                        x = resample_poly(x, 16000 // np.gcd(rate, 16000), rate // np.gcd(rate, 16000))
                        x = 0.5 * x / max(np.abs(x).max(), 1e-9) + rng.standard_normal(len(x)) * 3e-4
                        sf.write(out, np.clip(x, -1, 1), 16000, subtype="PCM_16")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/espeak")
    parser.add_argument("--models", default="cnn-avg,raw,lstm")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    clean, protected = os.path.join(args.work, "clean"), os.path.join(args.work, "protected")
    build(clean)
    key = Key(hashlib.sha256(b"poscuda-unseen").digest(), Params())
    protect_tree(clean, protected, key, jobs=2)
    split = "_(" + "|".join(v.replace("+", "-") for v in HELD_OUT) + ")"
    labels, train, prot, test = load_split(clean, protected, split=split)
    quality = verify_trees(clean, protected, jobs=2).summary()
    models = args.models.split(",")
    on_clean = evaluate(train, test, len(labels), models, args.epochs)
    on_prot = evaluate(prot, test, len(labels), models, args.epochs)
    result = {"clips_train": len(train.labels), "clips_test": len(test.labels), "fad": quality["fad"],
              "snr_db_mean": quality["snr_db_mean"], "lsd_db_mean": quality["lsd_db_mean"],
              **{m: {"clean": round(on_clean[m, 0.0][1] * 100, 1), "protected": round(on_prot[m, 0.0][1] * 100, 1),
                     "protected_fit": round(on_prot[m, 0.0][0] * 100, 1)} for m in models}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
