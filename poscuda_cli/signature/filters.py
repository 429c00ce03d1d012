"""Per-label FIR filters: drawing them from a key's RNG and designing taps for a sample rate.

Two families:

* ``lowpass`` -- the paper's (and CUDA's) blur: ``taps`` weights drawn from U(0, blur),
  optionally the centre pinned to 1, normalised to sum 1. Non-negative taps that sum
  to 1 never raise a sample above the clip's peak.
* ``bandstop`` -- ``notches`` narrow stop bands at per-label centre frequencies (and
  ``low_notches`` more in the loud low band), a linear-phase (symmetric) FIR of
  ``filter_ms`` designed for each sample rate. With ``notch_spacing="mel"`` the centres are
  spread evenly in mel up to 0.95 x the file's Nyquist frequency (capped at
  ``notch_high_hz``), and each notch is as wide, in mel, as ``notch_width_hz`` is at 1 kHz,
  so the notches cover a 16 or 48 kHz file's spectrum the way they cover an 8 kHz one's.
  Its taps can be negative, so the transform saturates integer PCM and counts clips.
* ``curve`` -- a per-label gain curve learned by ``keygen --fit`` (audit/fit.py): gains at
  anchor frequencies, made into a linear-phase FIR of ``filter_ms`` by frequency sampling
  (scipy's ``firwin2``, the design fit.py differentiates); 0 dB above the anchors.

Either drawn family can be followed by ``echoes`` comb stages, x + gain * x delayed by a
per-label delay: ripples across the whole spectrum, loud bands included, that change
little what a listener hears (PESQ) and are what a raw-waveform model notices.
"""

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from ..features import hz_to_mel, mel_to_hz


@dataclass(frozen=True)
class FilterSpec:
    family: str
    values: tuple  # lowpass: the taps; bandstop: Notch, ...; curve: gains in dB
    depth: float = 1.0
    filter_ms: float = 0.0
    anchors_hz: tuple = ()  # curve: the frequencies of its gains
    echoes: tuple = ()  # ((delay s, gain), ...): comb stages after the family's filter


@dataclass(frozen=True)
class Notch:
    """A stop band at ``fraction`` of the way from ``low_hz`` to ``high_hz`` (in Hz or mel)."""

    fraction: float
    low_hz: float
    high_hz: float
    width_hz: float
    spacing: str = "hz"

    def band(self, samplerate):
        """(centre Hz, width Hz) at ``samplerate``, or None above the range it can reach."""
        if self.spacing == "hz":
            return self.low_hz + (self.high_hz - self.low_hz) * self.fraction, self.width_hz
        top = min(self.high_hz, 0.95 * samplerate / 2.0)
        if top <= self.low_hz:
            return None
        centre = mel_to_hz(hz_to_mel(self.low_hz) + self.fraction * (hz_to_mel(top) - hz_to_mel(self.low_hz)))
        return centre, self.width_hz * (700.0 + centre) / 1700.0


def taps_for(filter_ms, samplerate):
    """Odd FIR length of ``filter_ms`` milliseconds at ``samplerate`` (at least 3)."""
    return max(3, int(round(filter_ms * samplerate / 1000.0)) | 1)


def curve_anchors(samplerate, count=48):
    """``count`` anchor frequencies from 0 Hz to Nyquist, evenly spaced in mel: a fitted curve's grid."""
    anchors = mel_to_hz(np.linspace(0.0, hz_to_mel(samplerate / 2.0), count))
    anchors[0], anchors[-1] = 0.0, samplerate / 2.0  # exact ends: firwin2 needs 0 and Nyquist
    return tuple(float(f) for f in anchors)


def draw(params, rng):
    """Draw one label's filter from its RNG (the draw order is part of the key format)."""
    if params.filter == "lowpass":
        taps = rng.uniform(0.0, params.blur, params.taps)
        if params.pin:
            taps[params.taps // 2] = 1.0
        return FilterSpec("lowpass", tuple(float(t) for t in taps / taps.sum()))
    fractions = np.sort(rng.uniform(0.0, 1.0, params.notches))  # the same draws as uniform(low, high)
    return FilterSpec("bandstop", tuple(Notch(float(u), params.notch_low_hz, params.notch_high_hz,
                                              params.notch_width_hz, params.notch_spacing) for u in fractions),
                      params.depth, params.filter_ms)


def draw_extras(spec, params, rng):
    """Add the low notches and echoes, drawn after the layout (so keys without them are unchanged)."""
    values = spec.values
    if spec.family == "bandstop" and params.low_notches:
        low = np.sort(rng.uniform(0.0, 1.0, params.low_notches))
        values = values + tuple(Notch(float(u), params.low_notch_low_hz, params.low_notch_high_hz,
                                      params.low_notch_width_hz) for u in low)
    delays = rng.uniform(params.echo_min_ms, params.echo_max_ms, params.echoes) / 1000.0
    return replace(spec, values=values, echoes=tuple((float(d), params.echo_gain) for d in delays))


@lru_cache(maxsize=1024)
def design(spec, samplerate):
    """The FIR taps (float64, odd length for bandstop and curve) of ``spec`` at ``samplerate``."""
    if spec.family == "lowpass":
        taps = np.array(spec.values, dtype=np.float64)
    elif spec.family == "curve":
        taps = _curve_taps(spec, taps_for(spec.filter_ms, samplerate), samplerate / 2.0)
    else:
        taps = _bandstop_taps(spec, taps_for(spec.filter_ms, samplerate), samplerate)
    for delay, gain in spec.echoes:
        shift = max(1, int(round(delay * samplerate)))
        comb = np.zeros(2 * shift + 1)
        comb[shift], comb[2 * shift] = 1.0, gain  # centred: the direct sound is not moved
        taps = np.convolve(taps, comb)
    taps.setflags(write=False)
    return taps


def _bandstop_taps(spec, numtaps, samplerate):
    taps = np.zeros(numtaps)
    taps[numtaps // 2] = 1.0
    for low, high in _merged_bands(notch_bands(spec, samplerate), samplerate / 2.0):
        taps -= spec.depth * bandpass_taps(numtaps, low, high, samplerate)
    return taps


def bandpass_taps(numtaps, low, high, samplerate):
    """The window-method band-pass of ``scipy.signal.firwin(numtaps, [low, high], pass_zero=False,
    fs=samplerate)``: a Hamming-windowed sinc pair scaled to unit gain at the band's centre.
    Written out because importing scipy.signal costs protect half a second per run."""
    left, right = 2.0 * low / samplerate, 2.0 * high / samplerate
    m = np.arange(numtaps) - 0.5 * (numtaps - 1)
    taps = right * np.sinc(right * m) - left * np.sinc(left * m)
    taps *= 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(numtaps) / (numtaps - 1))
    return taps / np.sum(taps * np.cos(np.pi * m * 0.5 * (left + right)))


def notch_bands(spec, samplerate):
    """The (centre Hz, width Hz) of each of a bandstop filter's notches at ``samplerate``."""
    return [band for band in (notch.band(samplerate) for notch in spec.values) if band is not None]


def _merged_bands(notches, nyquist):
    """Stop bands [c - w/2, c + w/2] of ``notches`` ((c, w), ...), merged where they overlap,
    kept strictly inside (0, nyquist)."""
    bands = []
    for centre, width in sorted(notches):
        low, high = max(centre - width / 2, 1.0), min(centre + width / 2, nyquist * 0.98)
        if high <= low:
            continue  # notch above this sample rate's Nyquist frequency: nothing to remove
        if bands and low <= bands[-1][1]:
            bands[-1] = (bands[-1][0], max(high, bands[-1][1]))
        else:
            bands.append((low, high))
    return bands


def _curve_taps(spec, numtaps, nyquist):
    from scipy.signal import firwin2

    anchors = np.array(spec.anchors_hz)
    gains = 10.0 ** (np.array(spec.values) / 20.0)
    gain_at_nyquist = float(np.interp(nyquist, anchors, gains, right=1.0))
    inside = anchors < nyquist  # the curve is cut at this rate's Nyquist frequency ...
    freqs = np.concatenate([anchors[inside], [nyquist]])  # ... and goes to 0 dB above its own
    return firwin2(numtaps, freqs, np.concatenate([gains[inside], [gain_at_nyquist]]), fs=2 * nyquist)
