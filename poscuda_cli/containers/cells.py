"""One audio cell of a container, protected as ``protect`` protects a file of its label."""

from dataclasses import dataclass, field

from .. import audio
from ..counts import Counts
from ..errors import PoscudaError
from ..labels import check_label
from ..signature.transform import protect_clip


@dataclass
class Result(Counts):
    """What protecting one container did."""

    rows: int = 0  # rows (samples) in it
    failed: list = field(default_factory=list)  # "row 3: reason" / "member x.flac: reason"

    @classmethod
    def merged(cls, results):
        """One Result for a container done in parts."""
        whole = cls()
        for part in results:
            whole.add(part)
            whole.rows += part.rows
            whole.failed += part.failed
        return whole


@dataclass
class Cell:
    data: bytes  # the protected file's bytes
    counts: Counts


def protect_cell(data, label, key, name):
    """The bytes of the protected copy of an audio file held in ``data`` (same format and subtype),
    for ``label``; a PoscudaError names ``name`` when it cannot be done."""
    label = check_label(str(label), name)
    samples, info = audio.decode(data, name)
    try:
        result = protect_clip(samples, key.label_plan(label), info.samplerate, info.bits)
    except ValueError as exc:
        raise PoscudaError(f"{name}: {exc}") from None
    return Cell(audio.encode(result.audio, info),
                Counts.clip(label, samples.size, result.changed, result.clipped, info.frames / info.samplerate))
