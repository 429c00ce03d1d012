"""A 16 kHz spoken-word set poscuda was not tuned on: 20 words from two speech synthesisers.

Words: yes, no, up, down, left, right, on, off, stop, go and the digits zero to nine (one
folder each). Voices: espeak-ng (formant synthesis; 7 accents x 6 voice variants x 3
pitch/speed settings) and flite (voices built from recorded speech: kal16, slt, awb, rms;
x 3 speeds x 3 pitches). Each clip is resampled to 16 kHz, given 0-200 ms of leading
silence, a random level and a little noise, and written as PCM_16. File names carry the
voice, so whole voices can be held out: ``HELD_OUT`` is the test set's pattern.

Synthetic speech is not real speech; this is a second, independent check, not a benchmark.

    python bench/speech16k.py runs/speech16k     # needs espeak-ng and flite (Debian packages)
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
         "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ESPEAK_VOICES = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("", "+m1", "+m3", "+f2", "+f4", "+m7")
FLITE_VOICES = ("kal16", "slt", "awb", "rms")
HELD_OUT = r"_(en-029|rms)[-_]"  # test voices: one of each synthesiser
RATE = 16000


def _espeak(word, voice, pitch, speed, path):
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", path, word],
                   check=True, capture_output=True)


def _flite(word, voice, stretch, pitch, path):
    subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}",
                    "--setf", f"int_f0_target_mean={pitch}", "-t", word, "-o", path], check=True, capture_output=True)


def recipes():
    """(file stem, synthesiser call) for every clip of one word."""
    for voice in ESPEAK_VOICES:
        for variant in ESPEAK_VARIANTS:
            for pitch, speed in ((35, 150), (50, 175), (70, 200)):
                yield (f"{voice}{variant.replace('+', '-')}_{pitch}_{speed}",
                       lambda w, p, v=voice + variant, a=pitch, b=speed: _espeak(w, v, a, b, p))
    for voice in FLITE_VOICES:
        for stretch in (0.85, 1.0, 1.2):
            for pitch in (90, 120, 170):
                yield (f"{voice}_{pitch}_{stretch:g}", lambda w, p, v=voice, s=stretch, f=pitch: _flite(w, v, s, f, p))


def build(root):
    """Write the set under ``root`` (skipping clips already there); returns root."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "x.wav")
        for n, word in enumerate(WORDS):
            os.makedirs(os.path.join(root, word), exist_ok=True)
            for m, (stem, synthesise) in enumerate(recipes()):
                out = os.path.join(root, word, f"{word}_{stem}.wav")
                if os.path.exists(out):
                    continue
                rng = np.random.default_rng([n, m])
                synthesise(word, raw)
                x, rate = sf.read(raw)
                x = resample_poly(x, RATE // np.gcd(rate, RATE), rate // np.gcd(rate, RATE))
                x = np.concatenate([np.zeros(int(rng.uniform(0, 0.2) * RATE)), x])
                x = x / max(np.abs(x).max(), 1e-9) * rng.uniform(0.2, 0.8)
                x = x + rng.standard_normal(len(x)) * 10 ** (rng.uniform(-75, -55) / 20)
                sf.write(out, np.clip(x, -1, 1), RATE, subtype="PCM_16")
    return root


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else "runs/speech16k"))
