"""Protect one clip: a label's filter applied inside that label's patches, nothing else touched."""

from dataclasses import dataclass

import numpy as np

from . import filters, layout
from .kernel import filter_ranges


@dataclass
class ClipResult:
    audio: np.ndarray
    changed: int  # samples (frames x channels) whose value changed
    clipped: int  # samples saturated at the format's limits


def protect_clip(audio, plan, samplerate, bits=None):
    """Return the protected copy of ``audio`` (frames x channels) for label ``plan``.

    Integer arrays hold PCM left-aligned in their container (libsndfile's convention:
    PCM_24 in int32 is value << 8); ``bits`` is the format's sample width. The filter
    runs in float64 on the true sample values; results are rounded and saturated to
    ``bits``, so samples outside the patches come back bit-identical. Float audio
    whose peak is within +-1 is saturated to +-1; float input must be finite.
    """
    if audio.ndim != 2:
        raise ValueError(f"audio must be (frames, channels), got shape {audio.shape}")
    integer = np.issubdtype(audio.dtype, np.integer)
    if integer:
        if bits is None:
            bits = audio.dtype.itemsize * 8
        quantum = 1 << (audio.dtype.itemsize * 8 - bits)
        values = audio.astype(np.float64) / quantum
        low, high = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    else:
        values = audio.astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError("float samples contain NaN or Inf")
        peak = np.abs(values).max(initial=0.0)
        low, high = (-1.0, 1.0) if peak <= 1.0 else (-np.inf, np.inf)

    taps = filters.design(plan.filter, samplerate)
    starts, stops = layout.ranges(plan.layout, audio.shape[0], samplerate, values)
    filtered = filter_ranges(values, taps, starts, stops)
    if integer:
        filtered = np.rint(filtered)
    clipped = int(np.count_nonzero((filtered < low) | (filtered > high)))
    np.clip(filtered, low, high, out=filtered)
    if integer:
        out = (filtered * quantum).astype(audio.dtype)
    else:
        out = filtered.astype(audio.dtype)
    return ClipResult(out, int(np.count_nonzero(out != audio)), clipped)
