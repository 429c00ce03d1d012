"""Fixtures: small audio trees generated with numpy, and the shared FSDD tree when present."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from poscuda_cli.key import generate_key
from poscuda_cli.signature.params import Params

FSDD = Path(os.environ.get("POSCUDA_FSDD", Path(__file__).resolve().parents[1].parent / "shared/data/fsdd"))


def speechlike(seconds=0.5, samplerate=8000, channels=1, seed=0):
    """A voiced-speech stand-in: harmonics of a gliding pitch under a syllable envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * samplerate)) / samplerate
    pitch = 120 + 40 * np.sin(2 * np.pi * 1.5 * t) + rng.uniform(-20, 20)
    phase = 2 * np.pi * np.cumsum(pitch) / samplerate
    voice = sum(np.sin(k * phase) / k for k in range(1, 20) if k * pitch.max() < samplerate / 2)
    envelope = np.sin(np.pi * t / t[-1]) ** 2 if len(t) > 1 else np.ones_like(t)
    mono = 0.4 * voice * envelope + 0.01 * rng.standard_normal(len(t))
    mono = mono / max(np.abs(mono).max(), 1e-9) * 0.8
    return np.stack([np.roll(mono, 7 * c) for c in range(channels)], axis=1)


def write_tree(root, files):
    """files: {relpath: (format, subtype, samplerate, channels, seconds)} or {relpath: bytes}."""
    for seed, (rel, spec) in enumerate(sorted(files.items())):
        path = Path(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, bytes):
            path.write_bytes(spec)
            continue
        fmt, subtype, samplerate, channels, seconds = spec
        sf.write(path, speechlike(seconds, samplerate, channels, seed), samplerate, subtype=subtype, format=fmt)
    return Path(root)


def vowel_tree(root, count, seed=0):
    """Three labels that differ only in a first formant (400, 650 or 900 Hz, +-5%) over speechlike clips of
    random pitch: a from-scratch model learns them at once, and so learns a notch shortcut too."""
    from scipy.signal import iirpeak, lfilter

    rng = np.random.default_rng(seed)
    for label, formant in (("a", 400.0), ("e", 650.0), ("i", 900.0)):
        for i in range(count):
            x = speechlike(0.5, 8000, seed=int(rng.integers(1 << 30)))[:, 0]
            b, a = iirpeak(formant * rng.uniform(0.95, 1.05), 4, fs=8000)
            y = x + 2.0 * lfilter(b, a, x)
            path = Path(root, label, f"{label}_{i}.wav")
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, 0.5 * y / np.abs(y).max(), 8000, subtype="PCM_16")
    return Path(root)


MIXED_TREE = {
    "yes/a.wav": ("WAV", "PCM_16", 8000, 1, 0.6),
    "yes/deep/b.wav": ("WAV", "PCM_24", 16000, 2, 0.4),
    "no/c.flac": ("FLAC", "PCM_16", 22050, 1, 0.3),
    "no/d.wav": ("WAV", "FLOAT", 16000, 1, 0.5),
    "ñandú 🎵/e.aiff": ("AIFF", "PCM_16", 8000, 2, 0.3),
    "no/notes.txt": b"not audio\n",
    "meta.csv": b"path,label\n",
}


def without_packages(monkeypatch, *packages):
    """Make importing ``packages`` (and their submodules) fail, as when an extra is not installed."""
    import builtins

    real_import = builtins.__import__

    def blocked(name, *args, **kwargs):
        if name.split(".")[0] in packages:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)


@pytest.fixture
def key():
    return generate_key()


@pytest.fixture
def paper_key():
    return generate_key(Params(filter="lowpass", layout="offsets", patches=4, patch_ms=50, frame_s=0.3))


@pytest.fixture
def mixed_tree(tmp_path):
    return write_tree(tmp_path / "in", MIXED_TREE)


@pytest.fixture
def fsdd():
    if not FSDD.is_dir():
        pytest.skip(f"FSDD not found at {FSDD} (set POSCUDA_FSDD); it ships only beside the project's CI")
    return FSDD
