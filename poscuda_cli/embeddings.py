"""Embeddings for FAD, separate from the distance itself, with a per-file cache.

Backends map a mono float clip to (frames, dim) vectors:

* ``mfcc`` (default, numpy/scipy only): audio resampled to 16 kHz with scipy's polyphase
  resampler, 20 MFCCs (25 ms / 10 ms, 40 mel bands) plus their first differences: 40 dims.
* ``vggish``: the VGGish network (torch), weights from a file the user supplies.

The cache stores each file's vectors under the SHA-256 of its bytes and the backend id.
"""

import hashlib
import os

import numpy as np

from . import audio, features

EMBED_RATE = 16000


class MfccEmbedding:
    id = "mfcc-v1"

    def __call__(self, mono, samplerate):
        coeffs = features.mfcc(resample(mono, samplerate, EMBED_RATE), EMBED_RATE)
        deltas = np.diff(coeffs, axis=0, prepend=coeffs[:1])
        return np.concatenate([coeffs, deltas], axis=1)


def resample(mono, rate, target):
    if rate == target:
        return np.asarray(mono, np.float64)
    from scipy.signal import resample_poly

    gcd = np.gcd(int(rate), int(target))
    return resample_poly(np.asarray(mono, np.float64), target // gcd, rate // gcd)


def mono_float(path):
    """(mono float64 in [-1, 1], samplerate) of an audio file."""
    data, info = audio.read(path)
    if np.issubdtype(data.dtype, np.integer):
        data = data / float(np.iinfo(data.dtype).max + 1)
    return np.asarray(data, np.float64).mean(axis=1), info.samplerate


class Cache:
    """Embeddings on disk, keyed by file content and backend; ``None`` disables caching."""

    def __init__(self, folder):
        self.folder = folder
        if folder:
            os.makedirs(folder, exist_ok=True)

    def embed(self, path, backend):
        if not self.folder:
            return backend(*mono_float(path))
        digest = hashlib.sha256(backend.id.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        cached = os.path.join(self.folder, digest.hexdigest() + ".npy")
        try:
            return np.load(cached)
        except (OSError, ValueError):
            vectors = backend(*mono_float(path))
            tmp = f"{cached}.{os.getpid()}.tmp.npy"
            np.save(tmp, vectors)
            os.replace(tmp, cached)
            return vectors


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "poscuda", "embeddings")
