"""Protect one clip: a label's filter applied inside that label's patches, nothing else touched.

Work is split in two so that a long file can be processed block by block with the
same bits as in one piece: :func:`plan_clip` decides everything that depends on the
whole clip (taps, ranges, saturation limits), :func:`filter_window` filters any
window of it.
"""

from dataclasses import dataclass

import numpy as np

from . import filters, layout
from .kernel import filter_ranges, grid


@dataclass
class ClipResult:
    audio: np.ndarray
    changed: int  # samples (frames x channels) whose value changed
    clipped: int  # samples saturated at the format's limits


@dataclass(frozen=True)
class ClipPlan:
    frames: int
    taps: np.ndarray
    starts: np.ndarray
    stops: np.ndarray
    dtype: np.dtype
    quantum: int  # integer PCM: container step (PCM_24 in int32 is value << 8); 0 for float
    low: float
    high: float

    @property
    def grid(self):
        """Window outputs must start on multiples of this (the kernel's FFT block grid)."""
        return grid(len(self.taps), self.frames)

    @property
    def context(self):
        """Samples of context a window needs before and after the samples it outputs."""
        n = len(self.taps)
        return n - 1 - (n - 1) // 2, (n - 1) // 2


def quantum_of(dtype, bits):
    """Container step of integer PCM (``bits`` significant bits, left-aligned); 0 for float."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return 0
    return 1 << (dtype.itemsize * 8 - (bits or dtype.itemsize * 8))


def values_of(audio, quantum):
    """True sample values as float64 (integers for PCM)."""
    values = audio.astype(np.float64)
    return values / quantum if quantum > 1 else values


def plan_clip(label_plan, samplerate, frames, dtype, bits, peak, envelope):
    """What protection does to a clip of ``frames`` frames, given its peak value and envelope.

    Integer PCM is saturated to ``bits``; float audio whose peak is within +-1 is
    saturated to +-1, louder float audio is left unsaturated.
    """
    dtype = np.dtype(dtype)
    quantum = quantum_of(dtype, bits)
    if quantum:
        bits = bits or dtype.itemsize * 8
        low, high = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    else:
        low, high = (-1.0, 1.0) if peak <= 1.0 else (-np.inf, np.inf)
    starts, stops = layout.ranges(label_plan.layout, frames, samplerate, envelope)
    return ClipPlan(frames, filters.design(label_plan.filter, samplerate), starts, stops, dtype, quantum, low, high)


def filter_window(window, clip, start, out_start, out_stop):
    """Protected samples ``[out_start, out_stop)`` of the clip, from ``window`` = its samples from ``start``.

    The window must hold ``clip.context`` samples on each side of the output (or reach
    the clip's ends), and outputs must start and end on the kernel's grid (stream.py).
    Returns (samples in the clip's dtype, changed count, clipped count).
    """
    values = values_of(window, clip.quantum)
    starts = np.clip(clip.starts, out_start, out_stop) - start
    stops = np.clip(clip.stops, out_start, out_stop) - start
    keep = stops > starts
    filtered = filter_ranges(values, clip.taps, starts[keep], stops[keep], origin=start,
                             frames=clip.frames)[out_start - start:out_stop - start]
    if clip.quantum:
        np.rint(filtered, out=filtered)  # in place: filtered is filter_ranges' own copy
    clipped = np.count_nonzero(filtered < clip.low) + np.count_nonzero(filtered > clip.high)
    if clipped:
        np.clip(filtered, clip.low, clip.high, out=filtered)
    if clip.quantum > 1:
        filtered *= clip.quantum
    out = filtered.astype(clip.dtype)
    original = window[out_start - start:out_stop - start]
    return out, int(np.count_nonzero(out != original)), int(clipped)


def check_finite(values):
    if not np.isfinite(values).all():
        raise ValueError("float samples contain NaN or Inf")


def protect_clip(audio, label_plan, samplerate, bits=None):
    """Return the protected copy of ``audio`` (frames x channels) for ``label_plan``.

    Integer arrays hold PCM left-aligned in their container (libsndfile's convention);
    ``bits`` is the format's sample width. The filter runs in float64 on the true sample
    values; results are rounded and saturated, so samples outside the patches come back
    bit-identical. Float input must be finite.
    """
    if audio.ndim != 2:
        raise ValueError(f"audio must be (frames, channels), got shape {audio.shape}")
    integer = np.issubdtype(audio.dtype, np.integer)
    if not integer:
        check_finite(audio)
    peak = float(np.abs(audio).max(initial=0)) if not integer else 0.0
    quantum = quantum_of(audio.dtype, bits)
    envelope = layout.envelope(values_of(audio, quantum), samplerate) if label_plan.layout.kind == "onset" else None
    clip = plan_clip(label_plan, samplerate, len(audio), audio.dtype, bits, peak, envelope)
    return ClipResult(*filter_window(audio, clip, 0, 0, len(audio)))
