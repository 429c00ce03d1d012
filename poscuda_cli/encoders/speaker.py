"""Speaker embeddings: is the protected clip still the same voice? (the ``[quality]`` extra)

The encoder is the pretrained GE2E speaker encoder (Wan et al., ICASSP 2018) whose weights
ship inside the ``resemblyzer`` wheel, so nothing is downloaded. Clips are prepared exactly as
resemblyzer prepares them (16 kHz, -30 dBFS, long silences trimmed by webrtcvad), cut into
1.6 s partials (zero-padded when shorter), and a clip's embedding is the L2-normalised mean
of its partials' -- resemblyzer's ``embed_utterance``, batched over many clips at once.
"""

import multiprocessing
import warnings
from functools import lru_cache

import numpy as np

from ..errors import MissingExtraError

BATCH = 256  # partials per forward pass
# webrtcvad (resemblyzer's voice activity detector) imports the deprecated pkg_resources
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


def require():
    try:
        import resemblyzer  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(f"speaker similarity needs the quality extra: pip install 'poscuda[quality]' "
                                f"({exc})") from None


@lru_cache(maxsize=1)
def encoder():
    """The pretrained encoder, loaded once per process."""
    require()
    import torch
    from resemblyzer import VoiceEncoder

    if multiprocessing.parent_process() is not None:
        torch.set_num_threads(1)  # a worker process: the pool already runs one per core
    model = VoiceEncoder("cpu", verbose=False)
    model.eval()
    return model


def embed(clips):
    """Utterance embeddings (n, 256) and partial embeddings [(partials, 256)] of ``clips`` [(mono, rate)].

    Every clip must have some sound (the caller reports silent clips instead).
    """
    import torch
    from resemblyzer import preprocess_wav

    model = encoder()
    mels, owners = [], []
    for index, (mono, rate) in enumerate(clips):
        wav = preprocess_wav(np.asarray(mono, np.float32), source_sr=rate)
        wav_slices, mel_slices = model.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
        wav = np.pad(wav, (0, max(0, wav_slices[-1].stop - len(wav))))
        mel = mel_frames(wav)
        mels += [mel[s] for s in mel_slices]
        owners += [index] * len(mel_slices)
    partials = []
    with torch.no_grad():
        for start in range(0, len(mels), BATCH):
            partials.append(model(torch.from_numpy(np.stack(mels[start:start + BATCH]))).numpy())
    partials = np.concatenate(partials).astype(np.float64) if partials else np.zeros((0, 256))
    owners = np.array(owners)
    per_clip = [partials[owners == i] for i in range(len(clips))]
    means = np.array([p.mean(axis=0) for p in per_clip]).reshape(len(clips), -1)
    return means / np.linalg.norm(means, axis=1, keepdims=True), per_clip


@lru_cache(maxsize=1)
def _mel_basis():
    import librosa
    from resemblyzer import hparams

    return librosa.filters.mel(sr=hparams.sampling_rate, n_fft=_window(), n_mels=hparams.mel_n_channels)


def _window():
    from resemblyzer import hparams

    return int(hparams.sampling_rate * hparams.mel_window_length / 1000)


def mel_frames(wav):
    """resemblyzer.audio.wav_to_mel_spectrogram, the same numbers without librosa's slow einsum."""
    import librosa
    from resemblyzer import hparams

    hop = int(hparams.sampling_rate * hparams.mel_window_step / 1000)
    power = np.abs(librosa.stft(wav, n_fft=_window(), hop_length=hop)) ** 2
    return (_mel_basis() @ power).astype(np.float32).T


def similarity(a, b):
    """Cosine similarity of two L2-normalised embeddings."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))
