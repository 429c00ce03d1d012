"""poscuda: protect labeled audio datasets from unauthorized training (PosCUDA)."""

__version__ = "0.1.0"
