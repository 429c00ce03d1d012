"""PESQ and (extended) STOI of a protected clip against its original (the ``[quality]`` extra).

* PESQ (ITU-T P.862, the ``pesq`` package): wide-band mode on audio at 16 kHz or more,
  resampled to 16 kHz; narrow-band mode on audio from 8 kHz up to 16 kHz, resampled to 8 kHz.
  P.862 needs at least 0.25 s: shorter clips are padded with silence (both alike).
* STOI and extended STOI (``pystoi``, which resamples to 10 kHz itself). STOI drops silent
  frames and needs 30 frames (384 ms) of speech after that.

A score that the standard cannot give (too short, no speech found, rate under 8 kHz) raises
:class:`NotMeasured`; it is reported per file and never averaged in as a number.
"""

import warnings

import numpy as np

from ..audio import resample
from ..errors import MissingExtraError

PESQ_MIN_SECONDS = 0.25
# pystoi warns and returns exactly this value when a clip has too few frames of speech.
_STOI_TOO_SHORT = 1e-5
warnings.filterwarnings("ignore", message="Not enough STFT frames", category=RuntimeWarning)


class NotMeasured(Exception):
    """A perceptual metric that is undefined for this clip; the message says why."""


def require():
    """Fail early, with the install line, when the ``[quality]`` extra is missing."""
    try:
        import pesq  # noqa: F401
        import pystoi  # noqa: F401
    except ImportError:
        raise MissingExtraError("perceptual metrics need the quality extra: pip install 'poscuda[quality]'") from None


def pesq_mode(samplerate):
    """('wb', 16000) or ('nb', 8000): the P.862 mode and rate a clip at ``samplerate`` is scored in."""
    if samplerate >= 16000:
        return "wb", 16000
    if samplerate >= 8000:
        return "nb", 8000
    raise NotMeasured(f"PESQ needs audio at 8 kHz or more (this is {samplerate} Hz)")


def pesq_score(original, protected, samplerate):
    """(PESQ MOS-LQO, mode) of mono ``protected`` against mono ``original``."""
    from pesq import PesqError, pesq

    mode, rate = pesq_mode(samplerate)
    ref, deg = resample(original, samplerate, rate), resample(protected, samplerate, rate)
    short = int(np.ceil(PESQ_MIN_SECONDS * rate)) - len(ref)
    if short > 0:
        ref, deg = np.pad(ref, (0, short)), np.pad(deg, (0, short))
    try:
        return float(pesq(rate, ref, deg, mode)), mode
    except PesqError as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise NotMeasured(f"PESQ: {reason.lower()}") from None


def stoi_scores(original, protected, samplerate):
    """(STOI, extended STOI) of mono ``protected`` against mono ``original``."""
    from pystoi import stoi

    plain = stoi(original, protected, samplerate)
    if plain == _STOI_TOO_SHORT:
        raise NotMeasured("STOI: under 30 frames (384 ms) of speech")
    return float(plain), float(stoi(original, protected, samplerate, extended=True))
