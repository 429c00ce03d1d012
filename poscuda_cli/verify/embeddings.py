"""Embeddings for FAD, separate from the distance itself, with a per-file cache.

Backends map a mono float clip to (vectors, dim):

* ``mfcc`` (default, numpy/scipy only): audio resampled to 16 kHz with scipy's polyphase
  resampler, 20 MFCCs (25 ms / 10 ms, 40 mel bands) plus their first differences: 40 dims
  per 10 ms frame.
* ``speaker``: the pretrained speaker encoder that ships in the ``resemblyzer`` wheel
  (encoders/speaker.py), one 256-dim vector per 1.6 s partial; needs ``poscuda[quality]``.
* ``vggish``: the VGGish network (torch), weights from a file the user supplies
  (``--embedding vggish --weights vggish.pth``); log-mel 64 bands 125-7500 Hz, 0.96 s patches.

The cache stores each file's vectors under the SHA-256 of its bytes and the backend id.
"""

import hashlib
import os
from functools import lru_cache

import numpy as np

from .. import features
from ..audio import mono_float, resample
from ..errors import PoscudaError
from ..encoders import speaker

EMBED_RATE = 16000
EMBEDDINGS = ("mfcc", "speaker", "vggish")


class MfccEmbedding:
    id = "mfcc-v1"

    def __call__(self, mono, samplerate):
        coeffs = features.mfcc(resample(mono, samplerate, EMBED_RATE), EMBED_RATE)
        deltas = np.diff(coeffs, axis=0, prepend=coeffs[:1])
        return np.concatenate([coeffs, deltas], axis=1)


class SpeakerEmbedding:
    id = "resemblyzer-ge2e-v1"

    def __init__(self):
        speaker.require()

    def __call__(self, mono, samplerate):
        return speaker.embed([(mono, samplerate)])[1][0]


@lru_cache(maxsize=4)
def backend(name, weights=None):
    """The embedding called ``name`` (one of EMBEDDINGS), built once per process."""
    if name == "mfcc":
        return MfccEmbedding()
    if name == "speaker":
        return SpeakerEmbedding()
    if name == "vggish":
        if not weights:
            raise PoscudaError("the vggish embedding needs a weights file (--weights, docs/verify.md)")
        return VggishEmbedding(weights)
    raise PoscudaError(f"unknown embedding {name!r}; choose from {', '.join(EMBEDDINGS)}")


class Cache:
    """Embeddings on disk, keyed by file content and backend; ``None`` disables caching."""

    def __init__(self, folder):
        self.folder = folder
        if folder:
            os.makedirs(folder, exist_ok=True)

    def embed(self, source, backend, clip=None):
        """Vectors of an audio file, ``source`` its path or its bytes; ``clip`` = (mono, rate) if it
        was already read."""
        def compute():
            mono, rate = clip if clip is not None else _mono_and_rate(source)
            return backend(mono, rate)

        if not self.folder:
            return compute()
        digest = hashlib.sha256(backend.id.encode())
        if isinstance(source, bytes):
            digest.update(source)
        else:
            with open(source, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        cached = os.path.join(self.folder, digest.hexdigest() + ".npy")
        try:
            return np.load(cached)
        except (OSError, ValueError):
            vectors = compute()
            tmp = f"{cached}.{os.getpid()}.tmp.npy"
            np.save(tmp, vectors)
            os.replace(tmp, cached)
            return vectors


def _mono_and_rate(path):
    mono, info = mono_float(path)
    return mono, info.samplerate


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "poscuda", "embeddings")


class VggishEmbedding:
    """VGGish (Hershey et al. 2017) in torch, 128-d per 0.96 s patch, weights from a file.

    The state dict uses the key names of the widely used torch port (features.N.*,
    embeddings.N.*), e.g. its ``vggish-10086976.pth``; nothing is downloaded.
    """

    def __init__(self, weights):
        try:
            import torch
        except ImportError:
            from ..errors import MissingExtraError

            raise MissingExtraError("the vggish embedding needs torch: pip install 'poscuda[audit]'") from None
        self.torch = torch
        self.model = _vggish_network()
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state)
        except Exception as exc:  # torch.load raises whatever unpickling a bad file raises
            raise PoscudaError(f"{weights}: not VGGish weights ({str(exc).splitlines()[0]})") from None
        self.model.eval()
        digest = hashlib.sha256()
        for name, tensor in sorted(state.items()):
            digest.update(name.encode() + tensor.numpy().tobytes()[:4096])
        self.id = "vggish-" + digest.hexdigest()[:16]

    def __call__(self, mono, samplerate):
        mel = features.log_mel(resample(mono, samplerate, EMBED_RATE), EMBED_RATE, n_mels=64, fmin=125.0,
                               fmax=7500.0, offset=0.01, magnitude=True)
        count = max(1, int(np.ceil(len(mel) / 96)))
        mel = np.pad(mel, ((0, count * 96 - len(mel)), (0, 0)), constant_values=np.log(0.01))
        patches = self.torch.as_tensor(mel.reshape(count, 1, 96, 64), dtype=self.torch.float32)
        with self.torch.no_grad():
            return self.model(patches).numpy().astype(np.float64)


def _vggish_network():
    from torch import nn

    class Vggish(nn.Module):
        def __init__(self):
            super().__init__()
            layers, channels = [], 1
            for width in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
                if width == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                    channels = width
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096),
                                            nn.ReLU(True), nn.Linear(4096, 128), nn.ReLU(True))

        def forward(self, x):  # (patches, 1, 96 frames, 64 bands)
            x = self.features(x).permute(0, 2, 3, 1).contiguous()  # TensorFlow's flatten order
            return self.embeddings(x.view(x.size(0), -1))

    return Vggish()
