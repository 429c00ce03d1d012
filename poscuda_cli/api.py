"""The Python API: what the command line does, callable from code (docs/api.md).

    import poscuda_cli as poscuda
    key = poscuda.keygen("k.json")
    poscuda.protect_tree("corpus/", "protected/", key)
    clip = poscuda.protect_array(samples, 16000, "dog", key)

Everything here is a thin layer over the modules the CLI uses, so a file protected through
the API has exactly the bytes ``poscuda protect`` writes.
"""

import numpy as np

from . import labels as label_sources
from .audio import INTEGER_SUBTYPES
from .key import generate_key, load_key, write_key
from .signature.params import PRESETS, STRENGTHS
from .protect import protect_tree as _protect_tree
from .signature.transform import protect_clip

__all__ = ["keygen", "load_key", "protect_tree", "protect_array", "protect_bytes", "verify_trees", "label_table",
           "label_pattern"]


def keygen(path=None, strength="balanced", preset=None, params=(), force=False):
    """A new Key of ``strength`` (or the paper's ``preset``), with ``params`` overrides ("name=value");
    written to ``path`` (mode 0600) when one is given."""
    base = PRESETS[preset] if preset else STRENGTHS[strength]
    key = generate_key(base.with_overrides(params))
    if path is not None:
        write_key(key, path, force=force)
    return key


def protect_tree(src, dst, key, labels=None, jobs=None, force=False, fail_fast=False, progress=None,
                 processes=False, containers=None):
    """Protect the labeled audio under ``src`` into ``dst`` (as ``poscuda protect``); returns its Summary.

    ``key`` is a Key or the path of a key file; ``labels`` a label source (:func:`label_table`,
    :func:`label_pattern`; default: first-level folders). Files run in ``jobs`` threads;
    ``processes=True`` runs them in worker processes where they average under 512 kB, as the
    command line does (faster on many small files). On Linux, from a script running no other
    thread, the workers are forked; otherwise they are spawned, and the calling script needs the
    ``if __name__ == "__main__":`` guard. ``containers`` (``poscuda_cli.containers.Options("parquet")``
    or ``Options("webdataset")``) protects Parquet files or WebDataset shards instead of a tree.
    """
    if not hasattr(key, "label_plan"):
        key = load_key(key)
    return _protect_tree(src, dst, key, jobs=jobs, force=force, fail_fast=fail_fast, progress=progress,
                         labels=labels, processes=processes, containers=containers)


def verify_trees(original, protected, perceptual=(), labels=None, jobs=None, embedding="mfcc", processes=False,
                 containers=None):
    """Measure ``protected`` against ``original`` (as ``poscuda verify``); returns a Report whose
    ``summary()`` is the JSON summary. ``perceptual`` is a subset of ("pesq", "stoi", "speaker").

    Pairs run in threads; ``processes=True`` runs them in worker processes, as the command line
    does (faster with PESQ), and then your script needs the ``if __name__ == "__main__":`` guard.
    ``containers`` (as for :func:`protect_tree`) measures Parquet files or WebDataset shards.
    """
    from .verify import Plan
    from .verify import verify_trees as verify

    return verify(original, protected, Plan(tuple(perceptual), embedding), jobs=jobs, labels=labels,
                  processes=processes, containers=containers)


def protect_array(samples, samplerate, label, key, subtype=None):
    """The protected copy of in-memory audio: the samples ``poscuda protect`` writes for that file.

    ``samples`` is (frames,) or (frames, channels). Integer arrays are PCM as soundfile reads it
    (int16 for PCM_16; int32 for PCM_32, or PCM_24 left-aligned with ``subtype="PCM_24"``). Float
    arrays read from a PCM file (soundfile's default) need that file's ``subtype`` ("PCM_16", ...)
    to get protect's integer arithmetic back as floats; without it float audio is protected as a
    FLOAT file is. The result has the input's shape and dtype.
    """
    if not hasattr(key, "label_plan"):
        key = load_key(key)
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2):
        raise ValueError(f"samples must be (frames,) or (frames, channels), got shape {samples.shape}")
    frames = samples.reshape(len(samples), -1)
    if subtype is not None and subtype not in INTEGER_SUBTYPES:
        raise ValueError(f"subtype {subtype!r} is not integer PCM; one of {', '.join(sorted(INTEGER_SUBTYPES))}")
    plan = key.label_plan(label_sources.check_label(str(label), "protect_array"))
    if np.issubdtype(frames.dtype, np.integer):
        bits = INTEGER_SUBTYPES[subtype][1] if subtype else frames.dtype.itemsize * 8
        if frames.dtype not in (np.int16, np.int32):
            raise ValueError(f"integer samples must be int16 or int32 (as soundfile reads PCM), not {frames.dtype}")
        out = protect_clip(frames, plan, samplerate, bits).audio
    elif subtype is not None:
        container, bits = INTEGER_SUBTYPES[subtype]
        scale = float(2 ** (np.dtype(container).itemsize * 8 - 1))
        limits = np.iinfo(container)
        pcm = np.clip(np.rint(frames.astype(np.float64) * scale), limits.min, limits.max).astype(container)
        out = (protect_clip(pcm, plan, samplerate, bits).audio / scale).astype(frames.dtype)
    else:
        out = protect_clip(frames, plan, samplerate).audio
    return out.reshape(samples.shape)


def protect_bytes(data, label, key):
    """The protected copy of a whole audio file held in memory (WAV, FLAC, MP3, Ogg, ... bytes), in
    the same format and subtype: the bytes ``poscuda protect`` writes for that file under ``label``,
    and for that cell of a Parquet file or tar shard. For ``datasets.Dataset.map`` (docs/api.md)."""
    from .containers.cells import protect_cell

    if not hasattr(key, "label_plan"):
        key = load_key(key)
    return protect_cell(bytes(data), label, key, "protect_bytes").data


def label_table(path, path_column, label_column, root, delimiter=None):
    """Labels from a CSV/TSV of paths relative to ``root`` (checked whole now)."""
    return label_sources.TableLabels(path, path_column, label_column, root, delimiter)


def label_pattern(regex):
    """Labels from the first group of ``regex`` on each path relative to IN."""
    return label_sources.PatternLabels(regex)
