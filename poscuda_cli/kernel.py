"""The numba kernel: FIR convolution ("same" alignment) inside sample ranges only."""

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def _filter_ranges(x, taps, starts, stops, out):
    frames, channels = x.shape
    n = taps.shape[0]
    half = (n - 1) // 2
    for r in range(starts.shape[0]):
        for i in range(starts[r], stops[r]):
            k_lo = max(0, i + half - frames + 1)
            k_hi = min(n, i + half + 1)
            for c in range(channels):
                acc = 0.0
                for k in range(k_lo, k_hi):
                    acc += taps[k] * x[i + half - k, c]
                out[i, c] = acc


def filter_ranges(x, taps, starts, stops):
    """Return a copy of ``x`` whose samples in ``[starts[i], stops[i])`` are ``x`` convolved with ``taps``.

    ``x`` is float64 of shape (frames, channels); the convolution uses the whole clip
    (zero beyond its ends) with numpy's "same" alignment, so every channel is treated
    alike and samples outside the ranges are returned unchanged.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (frames, channels), got shape {x.shape}")
    taps = np.ascontiguousarray(taps, dtype=np.float64)
    if taps.ndim != 1 or taps.size == 0:
        raise ValueError("taps must be a non-empty 1-D array")
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    stops = np.ascontiguousarray(stops, dtype=np.int64)
    if starts.shape != stops.shape or starts.ndim != 1:
        raise ValueError("starts and stops must be 1-D arrays of equal length")
    if starts.size and (starts.min() < 0 or stops.max() > x.shape[0] or np.any(stops < starts)):
        raise ValueError("ranges must satisfy 0 <= start <= stop <= frames")
    out = x.copy()
    _filter_ranges(x, taps, starts, stops, out)
    return out
