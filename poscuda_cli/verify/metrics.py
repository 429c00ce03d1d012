"""Per-file quality of a protected clip against its original."""

import numpy as np

from .. import features


def snr_db(original, protected):
    """Signal-to-noise ratio of the change, in dB (inf when nothing changed)."""
    original = np.asarray(original, np.float64)
    noise = np.sum((np.asarray(protected, np.float64) - original) ** 2)
    signal = np.sum(original ** 2)
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(max(signal, 1e-20) / noise))


def log_spectral_distance(original, protected, samplerate):
    """Mean over frames of the RMS difference of the log power spectra, in dB."""
    a = _power_db(original, samplerate)
    b = _power_db(protected, samplerate)
    return float(np.mean(np.sqrt(np.mean((a - b) ** 2, axis=-1))))


def peak_change_db(original, protected):
    """How much the absolute peak moved, in dB (positive: louder)."""
    before, after = np.abs(original).max(initial=0.0), np.abs(protected).max(initial=0.0)
    if before == 0 or after == 0:
        return 0.0 if before == after else float("inf") * (1 if after > before else -1)
    return float(20 * np.log10(after / before))


def changed_fraction(original, protected):
    original, protected = np.asarray(original), np.asarray(protected)
    return float(np.count_nonzero(original != protected) / original.size) if original.size else 0.0


def _power_db(signal, samplerate):
    mono = np.asarray(signal, np.float64)
    mono = mono.mean(axis=1) if mono.ndim == 2 else mono
    framed = features.frames(mono, samplerate)
    power = np.abs(np.fft.rfft(framed, axis=-1)) ** 2
    return 10 * np.log10(power + 1e-10)
