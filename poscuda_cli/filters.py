"""Per-label FIR filters: drawing them from a key's RNG and designing taps for a sample rate.

Two families:

* ``lowpass`` -- the paper's (and CUDA's) blur: ``taps`` weights drawn from U(0, blur),
  optionally the centre pinned to 1, normalised to sum 1. Non-negative taps that sum
  to 1 never raise a sample above the clip's peak.
* ``bandstop`` -- ``notches`` narrow stop bands at per-label centre frequencies, a
  linear-phase (symmetric) FIR of ``filter_ms`` designed for each sample rate. Its
  taps can be negative, so the transform saturates integer PCM and counts clips.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class FilterSpec:
    family: str
    values: tuple  # lowpass: the taps; bandstop: notch centres in Hz
    width_hz: float = 0.0
    depth: float = 1.0
    filter_ms: float = 0.0


def draw(params, rng):
    """Draw one label's filter from its RNG (the draw order is part of the key format)."""
    if params.filter == "lowpass":
        taps = rng.uniform(0.0, params.blur, params.taps)
        if params.pin:
            taps[params.taps // 2] = 1.0
        return FilterSpec("lowpass", tuple(float(t) for t in taps / taps.sum()))
    centres = np.sort(rng.uniform(params.notch_low_hz, params.notch_high_hz, params.notches))
    return FilterSpec("bandstop", tuple(float(c) for c in centres), params.notch_width_hz,
                      params.depth, params.filter_ms)


@lru_cache(maxsize=1024)
def design(spec, samplerate):
    """The FIR taps (float64, odd length for bandstop) of ``spec`` at ``samplerate``."""
    if spec.family == "lowpass":
        return np.array(spec.values, dtype=np.float64)
    from scipy.signal import firwin

    nyquist = samplerate / 2.0
    numtaps = max(3, int(round(spec.filter_ms * samplerate / 1000.0)) | 1)
    bands = _merged_bands(spec.values, spec.width_hz, nyquist)
    taps = np.zeros(numtaps)
    taps[numtaps // 2] = 1.0
    for low, high in bands:
        taps -= spec.depth * firwin(numtaps, [low, high], pass_zero=False, fs=samplerate)
    taps.setflags(write=False)
    return taps


def _merged_bands(centres, width, nyquist):
    """Stop bands [c - w/2, c + w/2], merged where they overlap, kept strictly inside (0, nyquist)."""
    bands = []
    for centre in sorted(centres):
        low, high = max(centre - width / 2, 1.0), min(centre + width / 2, nyquist * 0.98)
        if high <= low:
            continue  # notch above this sample rate's Nyquist frequency: nothing to remove
        if bands and low <= bands[-1][1]:
            bands[-1] = (bands[-1][0], max(high, bands[-1][1]))
        else:
            bands.append((low, high))
    return bands
