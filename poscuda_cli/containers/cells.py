"""One audio cell of a container, protected as ``protect`` protects a file of its label."""

from collections import Counter
from dataclasses import dataclass, field

from .. import audio
from ..errors import PoscudaError
from ..labels import check_label
from ..transform import protect_clip


@dataclass
class Result:
    """What protecting one container did."""

    rows: int = 0  # rows (samples) in it
    cells: int = 0  # audio cells protected
    samples: int = 0
    changed: int = 0
    clipped: int = 0
    seconds: float = 0.0
    labels: Counter = field(default_factory=Counter)
    failed: list = field(default_factory=list)  # "row 3: reason" / "member x.flac: reason"

    @classmethod
    def merged(cls, results):
        """One Result for a container done in parts."""
        whole = cls()
        for part in results:
            for name in ("rows", "cells", "samples", "changed", "clipped", "seconds"):
                setattr(whole, name, getattr(whole, name) + getattr(part, name))
            whole.labels += part.labels
            whole.failed += part.failed
        return whole

    def add(self, cell):
        self.cells += 1
        self.samples += cell.samples
        self.changed += cell.changed
        self.clipped += cell.clipped
        self.seconds += cell.seconds
        self.labels[cell.label] += 1


@dataclass
class Cell:
    data: bytes  # the protected file's bytes
    label: str
    samples: int
    changed: int
    clipped: int
    seconds: float


def protect_cell(data, label, key, name):
    """The bytes of the protected copy of an audio file held in ``data`` (same format and subtype),
    for ``label``; a PoscudaError names ``name`` when it cannot be done."""
    label = check_label(str(label), name)
    samples, info = audio.decode(data, name)
    try:
        result = protect_clip(samples, key.label_plan(label), info.samplerate, info.bits)
    except ValueError as exc:
        raise PoscudaError(f"{name}: {exc}") from None
    return Cell(audio.encode(result.audio, info), label, samples.size, result.changed, result.clipped,
                info.frames / info.samplerate)
