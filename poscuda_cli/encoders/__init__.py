"""Frozen pretrained encoders, the way most classifiers on a small audio set are built today
(the ``[encoders]`` extra; nothing is downloaded: the weights are files inside the wheels).
audit's attackers train heads on them, verify measures speaker similarity with one, and the
robust probes fit perturbations through the torch port of the kws one.

* ``kws`` (kws.py): Google's ``speech_embedding`` keyword-spotting model in openwakeword 0.4.0,
  one 96-d vector per 0.775 s window, every 80 ms.
* ``speaker`` (speaker.py): the GE2E speaker encoder shipped in resemblyzer, one 256-d vector
  per clip.
"""

from importlib import util

from .. import audio
from ..errors import MissingExtraError
from . import kws
from .kws import INSTALL, KWS_SECONDS


def embed(kind, clips, seconds=KWS_SECONDS, threads=None):
    """Embeddings of ``clips`` (their ``data`` and ``infos``, as audit.data.Clips holds them): (clips, 16-ish windows, 96) for ``kws``, (clips, 256)
    for ``speaker``. ``seconds`` is the kws window a clip is centred in (at least 2 s)."""
    if kind == "kws":
        return kws.embed(clips, seconds, threads)
    if kind == "speaker":
        return embed_speaker(clips)
    raise ValueError(f"unknown encoder {kind!r}")


def require(kind):
    """Fail with exit 6 and the install line unless encoder ``kind`` can run here."""
    if kind == "kws":
        kws.model_paths()
    elif util.find_spec("resemblyzer") is None:
        raise MissingExtraError(f"speaker-linear needs resemblyzer: {INSTALL}")


def embed_speaker(clips):
    """(clips, 256) speaker embeddings."""
    require("speaker")
    from . import speaker

    return speaker.embed([(audio.to_mono_float(d), info.samplerate) for d, info in zip(clips.data, clips.infos)])[0]
