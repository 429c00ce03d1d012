"""The numba kernel: FIR convolution ("same" alignment) inside sample ranges only.

Every output sample is the sum, in tap order from k = 0, of taps[k] * x[i + half - k]
(terms beyond the clip's ends are skipped), in strict IEEE float64 without fast-math.
So a sample's value does not depend on how the clip is split into ranges or blocks,
and the same input gives the same bits on every run.
"""

import numba
import numpy as np

_BLOCK = 2048  # outputs per pass over the taps: keeps the block in cache for long filters


@numba.njit(nogil=True, cache=True)
def _edge_sample(x, taps, i, half):
    frames, n = x.shape[0], taps.shape[0]
    acc = 0.0
    for k in range(max(0, i + half - frames + 1), min(n, i + half + 1)):
        acc += taps[k] * x[i + half - k]
    return acc


@numba.njit(nogil=True, cache=True)
def _filter_channel(x, taps, starts, stops, out):
    frames, n = x.shape[0], taps.shape[0]
    half = (n - 1) // 2
    # outputs whose taps all fall inside the clip: [n - 1 - half, frames - half)
    inner_lo, inner_hi = n - 1 - half, frames - half
    acc = np.empty(_BLOCK)
    for r in range(starts.shape[0]):
        lo, hi = starts[r], stops[r]
        a, b = max(lo, inner_lo), min(hi, inner_hi)
        if a >= b:
            a = b = hi
        for i in range(lo, a):
            out[i] = _edge_sample(x, taps, i, half)
        for block in range(a, b, _BLOCK):
            end = min(block + _BLOCK, b)
            m = end - block
            acc[:m] = 0.0
            for k in range(n):  # vectorises over the block; each output still sums in tap order
                t = taps[k]
                window = x[block + half - k:block + half - k + m]  # a view: lets LLVM vectorise
                for j in range(m):
                    acc[j] += t * window[j]
            out[block:end] = acc[:m]
        for i in range(b, hi):
            out[i] = _edge_sample(x, taps, i, half)


def filter_ranges(x, taps, starts, stops):
    """Return a copy of ``x`` whose samples in ``[starts[i], stops[i])`` are ``x`` convolved with ``taps``.

    ``x`` is float64 of shape (frames, channels); the convolution uses the whole clip
    (zero beyond its ends) with numpy's "same" alignment, so every channel is treated
    alike and samples outside the ranges are returned unchanged.
    """
    x = np.asarray(x, dtype=np.float64)
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
    channels = np.ascontiguousarray(x.T)  # one contiguous row per channel
    out = channels.copy()
    for c in range(channels.shape[0]):
        _filter_channel(channels[c], taps, starts, stops, out[c])
    return out.T
