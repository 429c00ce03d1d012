"""Direct FIR convolution ("same" alignment) for short filters, as numba kernels.

Every output sample is the sum, in tap order from k = 0, of taps[k] * x[i + half - k], in
strict IEEE float64 (no fastmath), so it does not depend on how a clip is split into ranges.
kernel.filter_ranges sends filters shorter than kernel.FFT_MIN_TAPS here.
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


def direct_ranges(x, taps, starts, stops):
    """``x`` (frames, channels) with each channel convolved with ``taps`` inside ``[starts, stops)``
    (validated by kernel.filter_ranges)."""
    channels = np.ascontiguousarray(x.T)  # one contiguous row per channel
    out = channels.copy()
    for c in range(channels.shape[0]):
        _filter_channel(channels[c], taps, starts, stops, out[c])
    return out.T
