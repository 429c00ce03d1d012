"""Deterministic log-mel and MFCC frames (numpy/scipy only).

Shared by verify (FAD embeddings) and audit (attacker inputs), so both measure
audio the same documented way: Hamming-windowed frames (25 ms, hop 10 ms),
power spectrum, HTK mel filterbank, natural log with a -100 dB floor, DCT-II.
"""

from functools import lru_cache

import numpy as np

FRAME_S = 0.025
HOP_S = 0.010


def hz_to_mel(hz):
    """HTK mel scale (the one every mel-spaced thing in poscuda uses: features, notches, curves)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def mel_filterbank(samplerate, n_fft, n_mels, fmin=20.0, fmax=None):
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters."""
    fmax = fmax or samplerate / 2.0
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / samplerate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    bank.setflags(write=False)
    return bank


def frames(signal, samplerate):
    """Hamming-windowed frames of a (..., samples) array, padded so short clips give one frame."""
    length = int(round(FRAME_S * samplerate))
    hop = int(round(HOP_S * samplerate))
    signal = np.asarray(signal, dtype=np.float64)
    if signal.shape[-1] < length:
        pad = [(0, 0)] * (signal.ndim - 1) + [(0, length - signal.shape[-1])]
        signal = np.pad(signal, pad)
    count = 1 + (signal.shape[-1] - length) // hop
    windows = np.lib.stride_tricks.sliding_window_view(signal, length, axis=-1)[..., ::hop, :][..., :count, :]
    return windows * np.hamming(length)


def log_mel(signal, samplerate, n_mels=40, fmin=20.0, fmax=None, offset=None, magnitude=False):
    """(..., frames, n_mels) log mel energies.

    By default log(power) floored at -100 dB; VGGish's front end instead takes
    log(magnitude mel + offset) between 125 and 7500 Hz.
    """
    framed = frames(signal, samplerate)
    n_fft = 1 << int(np.ceil(np.log2(framed.shape[-1])))
    spectrum = np.abs(np.fft.rfft(framed, n_fft, axis=-1))
    energies = (spectrum if magnitude else spectrum ** 2) @ mel_filterbank(samplerate, n_fft, n_mels, fmin, fmax).T
    if offset is not None:
        return np.log(energies + offset)
    return np.log(np.maximum(energies, 1e-10 * framed.shape[-1]))


def mfcc(signal, samplerate, n_mfcc=20, n_mels=40):
    """(..., frames, n_mfcc) MFCCs."""
    return cepstra(log_mel(signal, samplerate, n_mels), n_mfcc)


def cepstra(log_mel_frames, n_mfcc=20):
    """The first ``n_mfcc`` DCT-II coefficients of log-mel frames: MFCCs."""
    from scipy.fft import dct

    return dct(log_mel_frames, type=2, norm="ortho", axis=-1)[..., :n_mfcc]
