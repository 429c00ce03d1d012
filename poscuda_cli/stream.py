"""Protect files too long to hold in memory, block by block, with the same bits as in one piece.

Pass 1 reads the file in blocks for what depends on the whole clip (the envelope for
the onset layout; the peak and the NaN check for float audio); pass 2 filters each
block from a window with the filter's context on both sides and appends it to the
temporary output. Blocks start on multiples of both the envelope hop (so the envelope is
exactly the whole-clip envelope) and the kernel's FFT grid (so every FFT block sees the
same samples as in one piece). Windows are independent, so ``threads`` of them are
filtered at once (the FFT releases the GIL) and written in order: the same bytes.
"""

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import audio
from .signature import layout
from .signature.transform import check_finite, filter_window, plan_clip, quantum_of, values_of

BLOCK_SECONDS = 10.0


def protect_file_in_blocks(handle, out_path, label_plan, info, block_seconds=BLOCK_SECONDS, threads=1):
    """Protect the open SoundFile ``handle`` (see audio.opened) into ``out_path`` (atomically) in blocks
    of about ``block_seconds``, ``threads`` at a time; returns (samples, changed, clipped)."""
    dtype = audio.dtype_for(info)
    step = layout.hop(info.samplerate)
    block = max(step, int(block_seconds * info.samplerate) // step * step)  # for pass 1
    quantum = quantum_of(dtype, info.bits)
    onset = label_plan.layout.kind == "onset"
    peak, envelopes = 0.0, []
    if onset or not info.bits:  # pass 1 is needed only for the onset and for float peaks
        for data in handle.blocks(blocksize=block, dtype=dtype, always_2d=True):
            if not info.bits:
                check_finite(data)
                peak = max(peak, float(np.abs(data).max(initial=0)))
            if onset:
                envelopes.append(layout.envelope(values_of(data, quantum), info.samplerate))
    envelope = (np.concatenate(envelopes) if envelopes else np.zeros(0)) if onset else None
    clip = plan_clip(label_plan, info.samplerate, info.frames, dtype, info.bits, peak, envelope)
    unit = math.lcm(step, clip.grid)
    block = max(unit, round(block_seconds * info.samplerate / unit) * unit)
    windows = _windows(handle, info, dtype, block, clip.context)
    changed = clipped = 0
    with audio.AtomicWriter(out_path, info) as out, ThreadPoolExecutor(threads) as pool:
        for samples, block_changed, block_clipped in _in_order(pool, windows, clip, threads):
            out.write(samples)
            changed += block_changed
            clipped += block_clipped
    return info.frames * info.channels, changed, clipped


def _windows(handle, info, dtype, block, context):
    """(window, start, out_start, out_stop) for each output block: its samples with the filter's context."""
    before, after = context
    for out_start in range(0, info.frames, block):
        out_stop = min(out_start + block, info.frames)
        start = max(0, out_start - before)
        handle.seek(start)
        yield handle.read(min(info.frames, out_stop + after) - start, dtype=dtype, always_2d=True), start, \
            out_start, out_stop


def _in_order(pool, windows, clip, threads):
    """filter_window's results for ``windows`` in order, with ``threads`` running and one more read ahead."""
    pending = deque()
    for window, start, out_start, out_stop in windows:
        pending.append(pool.submit(filter_window, window, clip, start, out_start, out_stop))
        if len(pending) > threads:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()

