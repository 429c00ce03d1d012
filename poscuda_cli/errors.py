"""The project's own exceptions; the CLI turns each into a message and an exit code."""


def printable(text):
    """``text`` with the bytes of a name that is not UTF-8 shown as backslash escapes
    (``caf\\xe9.wav``): Python holds such names as surrogate escapes, which no UTF-8 output takes."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no file name decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


class PoscudaError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""

    exit_code = 1


class LabelsError(PoscudaError):
    """The label table or pattern is wrong: a missing column or file, a bad row or label."""

    exit_code = 2


class KeyFileError(PoscudaError):
    """The key file is missing, malformed, tampered with or out of range."""

    exit_code = 3


class UnsafePathError(PoscudaError):
    """IN/OUT are arranged so that running could overwrite or loop over data."""

    exit_code = 4


class AudioFileError(PoscudaError):
    """One file cannot be decoded or encoded; names the file and the reason."""

    exit_code = 1


class ManifestError(PoscudaError):
    """OUT belongs to another key or run (fingerprint mismatch, lock held)."""

    exit_code = 5


class MissingExtraError(PoscudaError):
    """An optional dependency (torch for audit and --fit, the quality extra for perceptual metrics) is missing."""

    exit_code = 6


class GateError(PoscudaError):
    """A quality or efficacy threshold (--max-fad, --min-snr) was violated."""

    exit_code = 7
