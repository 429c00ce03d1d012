"""What protecting audio did, counted once: per clip, per container, per run."""

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Counts:
    """Clips protected as each label, their samples, those changed and clipped, and their seconds."""

    labels: Counter = field(default_factory=Counter)  # label -> clips
    samples: int = 0
    changed: int = 0
    clipped: int = 0
    seconds: float = 0.0

    @property
    def clips(self):
        return sum(self.labels.values())

    @property
    def changed_fraction(self):
        return self.changed / self.samples if self.samples else 0.0

    def add(self, other):
        """Add ``other``'s counts (any Counts) to these."""
        self.labels.update(other.labels)
        self.samples += other.samples
        self.changed += other.changed
        self.clipped += other.clipped
        self.seconds += other.seconds

    @classmethod
    def clip(cls, label, samples, changed, clipped, seconds):
        """The counts of one protected clip."""
        return cls(Counter({label: 1}), samples, changed, clipped, seconds)
