"""Where in a clip a label's filter is applied: the patch layout.

All layouts are drawn per label from the key's RNG and mapped onto a clip of any
length and sample rate here, in one place:

* ``offsets``   -- ``patches`` patches at fixed times inside the first ``frame_s`` seconds
                   (the paper's form);
* ``fractions`` -- patches at fixed fractions of the clip's own length;
* ``onset``     -- fixed offsets counted from the speech onset (first loud 10 ms frame);
* ``tile``      -- a patch every per-label period, at a per-label phase, over the whole clip;
* ``whole``     -- the whole clip.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LayoutSpec:
    kind: str
    values: tuple = ()  # offsets/onset: seconds; fractions: [0, 1); tile: (period_s, phase_s)
    patch_s: float = 0.0


def draw(params, rng):
    """Draw one label's layout from its RNG (the draw order is part of the key format)."""
    patch_s = params.patch_ms / 1000.0
    if params.layout in ("offsets", "onset"):
        span = max(params.frame_s - patch_s, 0.0)
        values = np.sort(rng.uniform(0.0, span, params.patches))
    elif params.layout == "fractions":
        values = np.sort(rng.uniform(0.0, 1.0, params.patches))
    elif params.layout == "tile":
        period = rng.uniform(params.period_min_ms, params.period_max_ms) / 1000.0
        values = np.array([period, rng.uniform(0.0, period)])
    else:
        values = np.array([])
    return LayoutSpec(params.layout, tuple(float(v) for v in values), patch_s)


def ranges(spec, frames, samplerate, envelope=None):
    """Sample ranges ``(starts, stops)`` of ``spec`` on a clip; sorted, merged and inside [0, frames).

    ``envelope`` (the clip's :func:`envelope`) is needed only by the ``onset`` layout.
    """
    patch = int(round(spec.patch_s * samplerate))
    if spec.kind == "whole":
        starts = np.array([0])
        stops = np.array([frames])
    elif spec.kind == "tile":
        period = max(int(round(spec.values[0] * samplerate)), 1)
        phase = int(round(spec.values[1] * samplerate)) % period
        starts = np.arange(phase - period, frames, period)
        stops = starts + min(patch, period)
    else:
        if spec.kind == "fractions":
            starts = np.floor(np.array(spec.values) * max(frames - patch, 0)).astype(np.int64)
        else:
            origin = onset(envelope, samplerate) if spec.kind == "onset" else 0
            starts = origin + np.round(np.array(spec.values) * samplerate).astype(np.int64)
        stops = starts + patch
    return _clip_and_merge(np.asarray(starts, np.int64), np.asarray(stops, np.int64), frames)


def hop(samplerate):
    """Samples per 10 ms envelope frame."""
    return max(int(samplerate // 100), 1)


def envelope(audio, samplerate):
    """RMS of the channel-averaged magnitude in consecutive 10 ms frames (a trailing partial frame is dropped).

    Computed frame by frame, so the envelope of a clip equals the concatenated envelopes
    of blocks that start on multiples of :func:`hop`.
    """
    step = hop(samplerate)
    mono = np.abs(np.asarray(audio, np.float64)).mean(axis=1)
    count = len(mono) // step
    return np.sqrt((mono[: count * step].reshape(count, step) ** 2).mean(axis=1))


def onset(env, samplerate, threshold_db=-20.0):
    """Sample index of the first envelope frame within ``threshold_db`` of the loudest frame."""
    if env is None:
        raise ValueError("the onset layout needs the clip's envelope")
    if len(env) == 0 or env.max() <= 0.0:
        return 0
    loud = np.flatnonzero(env >= env.max() * 10.0 ** (threshold_db / 20.0))
    return int(loud[0]) * hop(samplerate)


def _clip_and_merge(starts, stops, frames):
    if len(starts) == 1:  # the whole clip, or one patch: nothing to merge
        start, stop = min(max(int(starts[0]), 0), frames), min(max(int(stops[0]), 0), frames)
        return (np.array([start], np.int64), np.array([stop], np.int64)) if stop > start else (
            np.zeros(0, np.int64), np.zeros(0, np.int64))
    starts, stops = np.clip(starts, 0, frames), np.clip(stops, 0, frames)
    keep = stops > starts
    starts, stops = starts[keep], stops[keep]
    order = np.argsort(starts, kind="stable")
    merged_starts, merged_stops = [], []
    for start, stop in zip(starts[order], stops[order]):
        if merged_stops and start <= merged_stops[-1]:
            merged_stops[-1] = max(merged_stops[-1], stop)
        else:
            merged_starts.append(start)
            merged_stops.append(stop)
    return np.array(merged_starts, np.int64), np.array(merged_stops, np.int64)
