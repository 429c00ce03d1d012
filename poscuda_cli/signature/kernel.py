"""FIR convolution ("same" alignment) inside sample ranges only, bit-stable under any split.

Two paths, chosen by the filter's length alone:

* short filters (the paper's 9 taps): direct.py's numba kernel, every output sample summed in
  tap order in strict IEEE float64 (numba loads only when such a filter is used: its import
  alone costs protect 0.4 s per run and per worker process);
* long filters (the default notches: 257 taps at 8 kHz, 513 at 16 kHz): FFT convolution in
  blocks laid on a grid fixed to absolute sample positions (:func:`grid`). Each block is
  one FFT of exactly the same samples -- zeros beyond the clip's ends -- however the clip is
  split into windows, as long as windows start and end on the grid (stream.py does).

Either way a sample's value does not depend on how the clip is split into ranges or
windows, and the same input gives the same bits on every run.
"""

from functools import lru_cache

import numpy as np
from scipy import fft

FFT_MIN_TAPS = 48  # from this length on, FFT blocks beat the direct kernel
FFT_BLOCK_MIN = 1 << 12  # outputs per FFT block: 16 filter lengths, at least this (larger blocks fall out of cache)


def grid(ntaps, frames):
    """Outputs per FFT block for a filter of ``ntaps`` on a clip of ``frames`` (1: the direct kernel).

    Depends on the filter and the clip's length only, never on a window: short clips are one block.
    """
    if ntaps < FFT_MIN_TAPS:
        return 1
    return max(1, min(frames, max(FFT_BLOCK_MIN, 1 << int(np.ceil(np.log2(16 * ntaps))))))


def filter_ranges(x, taps, starts, stops, origin=0, frames=None):
    """Return a copy of ``x`` whose samples in ``[starts[i], stops[i])`` are ``x`` convolved with ``taps``.

    ``x`` is float64 of shape (samples, channels): the whole clip, or a window of it starting
    at sample ``origin`` of a clip of ``frames`` samples. The convolution uses the whole clip
    (zero beyond its ends) with numpy's "same" alignment, so every channel is treated alike and
    samples outside the ranges are returned unchanged. A window must hold every sample the
    filter reads for its ranges and, for long filters, start and end on the :func:`grid`.
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
    frames = x.shape[0] + origin if frames is None else frames
    block = grid(len(taps), frames)
    if block > 1:
        return _fft_ranges(x, taps, starts, stops, origin, frames, block)
    from .direct import direct_ranges

    return direct_ranges(x, taps, starts, stops)


@lru_cache(maxsize=256)
def _response(taps_bytes, size):
    """The filter's spectrum for FFTs of ``size`` (a label's filter serves many clips)."""
    response = fft.rfft(np.frombuffer(taps_bytes), size)[:, None]
    response.setflags(write=False)
    return response


def _fft_ranges(x, taps, starts, stops, origin, frames, block):
    """The FFT path: every grid block that meets a range, one FFT each, of the block's own samples."""
    ntaps = len(taps)
    before = ntaps - 1 - (ntaps - 1) // 2  # samples each output reads before and after itself
    size = fft.next_fast_len(block + ntaps - 1, real=True)
    response = _response(taps.tobytes(), size)
    out = x.copy()
    window_end = origin + x.shape[0]
    for first in sorted({b for lo, hi in zip(starts + origin, stops + origin) if hi > lo
                         for b in range(lo // block, (hi - 1) // block + 1)}):
        lo, hi = first * block, min(first * block + block, frames)
        need_lo, need_hi = lo - before, hi + ntaps - 1 - before
        if max(need_lo, 0) < origin or min(need_hi, frames) > window_end:
            raise ValueError("the window does not hold whole grid blocks of the clip (see kernel.grid)")
        segment = np.zeros((size, x.shape[1]))
        a, b = max(need_lo, 0), min(need_hi, frames)
        segment[a - need_lo:b - need_lo] = x[a - origin:b - origin]
        filtered = fft.irfft(fft.rfft(segment, axis=0) * response, size, axis=0)[ntaps - 1:ntaps - 1 + hi - lo]
        for range_lo, range_hi in zip(starts + origin, stops + origin):
            keep_lo, keep_hi = max(range_lo, lo), min(range_hi, hi)
            if keep_hi > keep_lo:
                out[keep_lo - origin:keep_hi - origin] = filtered[keep_lo - lo:keep_hi - lo]
    return out
