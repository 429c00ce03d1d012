"""Audio I/O that keeps a file's format, subtype, rate, channels and length.

PCM is read as integers so samples outside the patches are written back bit for
bit; float and lossy subtypes are read as float. Every write goes to a temporary
name beside the target and is renamed into place, so a final name never holds a
half-written file. Outputs are not fsynced one by one (as ``cp`` and ``rsync`` do not):
libsndfile's fsync on close cost more than protecting a short clip, and a file that a
power failure cuts short has the wrong size, which the manifest notices on resume.
"""

import hashlib
import io
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf

from . import ogg
from .errors import AudioFileError

# Integer subtypes: (numpy container, significant bits). libsndfile left-aligns
# narrower samples in the container (PCM_24 in int32 is value << 8).
INTEGER_SUBTYPES = {
    "PCM_S8": ("int16", 8), "PCM_U8": ("int16", 8), "PCM_16": ("int16", 16),
    "PCM_24": ("int32", 24), "PCM_32": ("int32", 32),
    "ALAW": ("int16", 16), "ULAW": ("int16", 16),
}
LOSSY_SUBTYPES = {"VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III"}
# Extensions libsndfile reads; a file with one of these must decode or it is an error.
AUDIO_EXTENSIONS = frozenset(
    {"." + fmt.lower() for fmt in sf.available_formats()}
    | {".aif", ".aiff", ".aifc", ".oga", ".opus", ".mp3", ".snd", ".au", ".w64", ".rf64", ".caf"}
    # audio libsndfile cannot decode: an error to report, never a file to copy out unprotected
    | {".m4a", ".m4b", ".aac", ".wma", ".webm", ".mka", ".mp4", ".amr", ".ape", ".wv", ".ac3"}
)
TEMP_SUFFIX = ".poscuda-tmp"


@dataclass(frozen=True)
class AudioInfo:
    samplerate: int
    channels: int
    frames: int
    format: str
    subtype: str
    endian: str

    @property
    def bits(self):
        return INTEGER_SUBTYPES[self.subtype][1] if self.subtype in INTEGER_SUBTYPES else None

    @property
    def lossy(self):
        return self.subtype in LOSSY_SUBTYPES


def is_audio_name(name):
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


@contextmanager
def opened(path):
    """``(SoundFile, AudioInfo)`` of ``path``, open for reading once; refuses empty, undecodable
    and truncated files."""
    with _decoding(path):
        if os.path.getsize(path) == 0:
            raise AudioFileError(f"{path}: empty file (0 bytes)")
        handle = sf.SoundFile(os.fsencode(path))  # bytes: soundfile encodes a str strictly, failing on non-UTF-8 names
    try:
        yield handle, _checked_info(handle, path)
    finally:
        handle.close()


def decode(data, name):
    """(samples, AudioInfo) of an audio file held in memory (``data``: its bytes), as :func:`read`
    reads a file; errors name ``name`` (e.g. a Parquet row or a tar member)."""
    if not data:
        raise AudioFileError(f"{name}: empty audio (0 bytes)")
    with _decoding(name, on_disk=False):
        handle = sf.SoundFile(io.BytesIO(data))
    with handle:
        info = _checked_info(handle, name)
        return read_all(handle, name, info, on_disk=False), info


def encode(data, info):
    """The bytes of an audio file holding ``data`` in ``info``'s format: those :func:`write_atomic`
    writes to disk."""
    buffer = io.BytesIO()
    try:
        handle = sf.SoundFile(buffer, "w", info.samplerate, info.channels, info.subtype, info.endian, info.format)
        _no_peak_chunk(handle)
        handle.write(data)
        handle.close()
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(f"cannot encode {info.format}/{info.subtype} audio ({_reason(exc)})") from None
    return ogg.fixed_serial(buffer.getvalue()) if info.format == "OGG" else buffer.getvalue()


def _checked_info(handle, name):
    declared = _declared_data_bytes(handle.extra_info)
    if declared:
        raise AudioFileError(f"{name}: truncated file (header declares {declared[0]} data bytes, "
                             f"only {declared[1]} present)")
    return _info(handle)


def read(path):
    """Return (samples as frames x channels, AudioInfo); integers for PCM, float otherwise."""
    with opened(path) as (handle, info):
        return read_all(handle, path, info), info


def read_all(handle, path, info, on_disk=True):
    """Every sample of the open ``handle`` of ``path``, in ``dtype_for(info)``."""
    with _decoding(path, on_disk):
        data = handle.read(dtype=dtype_for(info), always_2d=True)
    if data.shape[0] != info.frames and not info.lossy:
        raise AudioFileError(f"{path}: truncated audio (header says {info.frames} frames, read {data.shape[0]})")
    return data


def mono_float(source, name=None):
    """(mono float64 in [-1, 1], AudioInfo) of an audio file: the form every analysis reads.
    ``source`` is its path, or its bytes (then errors name ``name``)."""
    data, info = decode(source, name) if isinstance(source, bytes) else read(source)
    return to_mono_float(data), info


def to_mono_float(data):
    """Channel mean of samples as :func:`read` returns them, as float64 in [-1, 1]."""
    if np.issubdtype(data.dtype, np.integer):
        data = data / float(np.iinfo(data.dtype).max + 1)
    return np.asarray(data, np.float64).mean(axis=1)


def resample(mono, rate, target):
    """``mono`` at ``rate`` resampled to ``target`` Hz with scipy's polyphase resampler and its
    default filter (designed once per ratio here, not on every call); a no-op if equal."""
    if rate == target:
        return np.asarray(mono, np.float64)
    from scipy.signal import resample_poly

    gcd = np.gcd(int(rate), int(target))
    up, down = target // gcd, rate // gcd
    return resample_poly(np.asarray(mono, np.float64), up, down, window=resampling_filter(up, down))


@lru_cache(maxsize=32)
def resampling_filter(up, down):
    """resample_poly's own default design: a Kaiser(5) low-pass at the lower Nyquist, 10 zero crossings."""
    from scipy.signal import firwin

    rate = max(up, down)
    taps = firwin(2 * 10 * rate + 1, 1.0 / rate, window=("kaiser", 5.0))
    taps.setflags(write=False)
    return taps


def dtype_for(info):
    """The numpy dtype a file is read as: its integer container for PCM, else float32/float64."""
    if info.subtype in INTEGER_SUBTYPES:
        return INTEGER_SUBTYPES[info.subtype][0]
    return "float64" if info.subtype == "DOUBLE" else "float32"


@contextmanager
def _decoding(path, on_disk=True):
    """Turn libsndfile's and the OS's errors into an AudioFileError naming the file."""
    try:
        yield
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError, ValueError) as exc:
        reason = (on_disk and _os_reason(path)) or _reason(exc)
        raise AudioFileError(f"{path}: cannot decode audio ({reason})") from None


def _os_reason(path):
    """Why the OS will not let ``path`` be read, if it will not: libsndfile says only "System error."."""
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError as exc:
        return exc.strerror
    return None


def _info(handle):
    return AudioInfo(handle.samplerate, handle.channels, handle.frames, handle.format, handle.subtype, handle.endian)


def _declared_data_bytes(log):
    """(declared, present) when libsndfile's log says the data chunk is cut short, else None.

    Streamed files that left the size as a placeholder (0 or 0xFFFFFFFF) are not truncated.
    """
    match = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", log, re.MULTILINE)
    if match:
        declared, present = int(match.group(1)), int(match.group(2))
        if present < declared and declared not in (0, 0xFFFFFFFF, 0x7FFFFFFF):
            return declared, present
    return None


class AtomicWriter:
    """Context manager: a SoundFile open on a temporary name beside ``path`` with ``info``'s
    format, renamed to ``path`` only if the block exits without an exception."""

    def __init__(self, path, info):
        self.path, self.info, self.tmp = path, info, temp_name(path)

    def __enter__(self):
        try:
            self.handle = sf.SoundFile(os.fsencode(self.tmp), "w", self.info.samplerate, self.info.channels,
                                       self.info.subtype, self.info.endian, self.info.format)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            _remove_quietly(self.tmp)
            raise AudioFileError(f"{self.path}: cannot write audio ({_reason(exc)})") from None
        _no_peak_chunk(self.handle)
        return self.handle

    def __exit__(self, kind, exc, traceback):
        try:
            _close_without_fsync(self.handle)
            if kind is None:
                if self.info.format == "OGG":
                    ogg.fix_serial_in_place(self.tmp)
                os.replace(self.tmp, self.path)
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            _remove_quietly(self.tmp)
            raise AudioFileError(f"{self.path}: cannot write audio ({_reason(error)})") from None
        if kind is not None:
            _remove_quietly(self.tmp)
            if issubclass(kind, (sf.LibsndfileError, RuntimeError, OSError)):
                raise AudioFileError(f"{self.path}: cannot write audio ({_reason(exc)})") from None
        return False


def _close_without_fsync(handle):
    """SoundFile.close() without its flush (sf_write_sync, an fsync); soundfile has no public call
    for this. sf_close still writes the final header and closes the file, reporting any error."""
    if handle.closed:
        return
    err = sf._snd.sf_close(handle._file)
    handle._file = None
    if err:
        raise sf.LibsndfileError(err, "cannot close the file: ")


def write_atomic(path, data, info):
    """Write ``data`` to ``path`` with ``info``'s format, via a temporary file and rename."""
    with AtomicWriter(path, info) as handle:
        handle.write(data)


def _no_peak_chunk(handle):
    """Float WAV/AIFF get a PEAK chunk with a wall-clock timestamp; leave it out so the same
    input gives the same bytes. soundfile has no public call for this libsndfile command."""
    sfc_set_add_peak_chunk = 0x1050
    sf._snd.sf_command(handle._file, sfc_set_add_peak_chunk, sf._ffi.NULL, 0)


def copy_atomic(src, dst):
    """Copy a non-audio file byte for byte, via a temporary file and rename."""
    tmp = temp_name(dst)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException as exc:
        _remove_quietly(tmp)
        if isinstance(exc, OSError):
            raise AudioFileError(f"{src}: cannot copy ({_reason(exc)})") from None
        raise


def temp_name(path):
    """A hidden name beside ``path``, short enough even when ``path``'s own name is at the limit."""
    head, tail = os.path.split(path)
    digest = hashlib.sha256(tail.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(head, f".{digest}.{os.getpid()}{TEMP_SUFFIX}")


def _remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _reason(exc):
    """The reason alone: libsndfile's own words, not its "Error opening <object>: " prefix."""
    return getattr(exc, "strerror", None) or getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
