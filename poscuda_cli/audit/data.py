"""The clips an audit trains and tests on, read once: a tree's audio files, or the audio cells of
Parquet files or WebDataset shards.

Clips are kept as read (integer PCM stays integer), so a key can be applied in memory with
exactly the samples ``poscuda protect`` would write. :func:`waves` then gives attackers what
they eat: mono, one sample rate, loudness-normalised, padded or cropped to one length.
"""

import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .. import audio, tree
from ..containers import cell_id, containers_at, counterparts
from ..errors import PoscudaError
from ..signature.transform import protect_clip


@dataclass
class Clips:
    """Labeled clips of one tree: relative paths, labels, and the samples as read."""

    root: str
    relpaths: list
    labels: list
    data: list  # (frames, channels) arrays in their read dtype
    infos: list  # AudioInfo
    names: list = None  # what --split and --groups match (their base names): the relpaths, or cells' file names

    def __post_init__(self):
        if self.names is None:
            self.names = self.relpaths

    @property
    def samplerate(self):
        """The most common sample rate: the rate attackers see."""
        return Counter(info.samplerate for info in self.infos).most_common(1)[0][0]

    def protected(self, key):
        """The clips as ``key`` protects them (in memory; nothing is written)."""
        data = [protect_clip(d, key.label_plan(label), info.samplerate, info.bits).audio
                for d, label, info in zip(self.data, self.labels, self.infos)]
        return Clips(self.root, self.relpaths, self.labels, data, self.infos, self.names)

    def subset(self, indices):
        pick = [int(i) for i in indices]
        return Clips(self.root, [self.relpaths[i] for i in pick], [self.labels[i] for i in pick],
                     [self.data[i] for i in pick], [self.infos[i] for i in pick], [self.names[i] for i in pick])


def labeled_files(root, split=None, test=False, labels=None):
    """(relpath, label) for the audio under ``root`` (labels from ``labels``, default its folders);
    with ``split``, only test (or only training) files."""
    walked = tree.walk(root, labels)
    chosen = _split_rule(split, test)
    files = [(entry.relpath, entry.label) for entry in walked.entries if entry.audio and chosen(entry.relpath)]
    if not files:
        raise PoscudaError(f"{root}: no labeled audio files{' matching the split' if split else ''}")
    return files


def _split_rule(split, test):
    """Whether a file (by the base name of its path) is on the wanted side of ``split``."""
    pattern = re.compile(split) if split else None
    return lambda path: pattern is None or bool(pattern.search(os.path.basename(path))) == test


def read_labeled(root, split=None, test=False, labels=None, containers=None):
    """The labeled clips at ``root``: a tree's audio files (``labels`` a label source), or with
    ``containers`` (a containers.Options) the audio cells of Parquet files or WebDataset shards;
    with ``split``, only the test (or only the training) ones."""
    if containers is None:
        return read_clips(root, labeled_files(root, split, test, labels))
    clips = read_cells(root, containers_at(root, containers), containers, _split_rule(split, test))
    if not clips.data:
        raise PoscudaError(f"{root}: no labeled audio cells{' matching the split' if split else ''}")
    return clips


def read_copy(clips, root, containers=None):
    """The copies at ``root`` (protected ones) of ``clips``, in their order: files of the same
    relative paths, or the cells of the same names in containers of the same names."""
    if containers is None:
        return read_clips(root, list(zip(clips.relpaths, clips.labels)))
    copies = read_cells(root, counterparts(clips.root, root, containers)[1], containers)
    where = {cell: i for i, cell in enumerate(copies.relpaths)}
    missing = [cell for cell in clips.relpaths if cell not in where]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise PoscudaError(f"{root}: no copy of {missing[0]}{more}")
    return copies.subset([where[cell] for cell in clips.relpaths])


def read_cells(root, found, options, chosen=lambda name: True):
    """The audio cells of the containers ``found`` ({relative path: path}) whose file names
    ``chosen`` keeps, as Clips named by cell (containers.cell_id); errors name the cell."""
    rows = []
    for relpath, path in found.items():
        for name, label, data, filename in options.kind.read_cells(path, options):
            if chosen(filename):
                cell = cell_id(relpath, name)
                rows.append((cell, label, *audio.decode(data, cell), filename))
    return Clips(root, *([list(column) for column in zip(*rows)] if rows else [[] for _ in range(5)]))


def read_clips(root, files, jobs=None):
    """Read ``files`` [(relpath, label)] under ``root``; errors name the file."""
    def read(relpath):
        return audio.read(os.path.join(root, *relpath.split("/")))

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count()) as pool:
        read_back = list(pool.map(read, [rel for rel, _ in files]))
    return Clips(root, [rel for rel, _ in files], [label for _, label in files],
                 [d for d, _ in read_back], [i for _, i in read_back])


def waves(clips, samplerate, seconds=1.0):
    """(clips, samples) float32: mono, resampled to ``samplerate``, RMS 0.1 (as attackers normalise),
    padded or cropped to ``seconds``."""
    length = int(round(seconds * samplerate))
    out = np.zeros((len(clips.data), length), np.float32)
    for i, (data, info) in enumerate(zip(clips.data, clips.infos)):
        mono = audio.resample(audio.to_mono_float(data), info.samplerate, samplerate)[:length]
        rms = float(np.sqrt(np.mean(mono ** 2))) if len(mono) else 0.0
        out[i, :len(mono)] = mono * (0.1 / max(rms, 1e-8))
    return out


def label_indices(labels, index, root):
    try:
        return np.array([index[label] for label in labels], np.int64)
    except KeyError as exc:
        raise PoscudaError(f"{root}: label {exc.args[0]!r} does not occur in the training tree") from None


def groups_of(names, pattern):
    """The group (e.g. speaker) of each file: the first capture group of ``pattern`` on its name."""
    regex = re.compile(pattern)
    if regex.groups < 1:
        raise PoscudaError(f"--groups {pattern!r}: the pattern needs a capture group, e.g. '_([a-z]+)_'")
    out = []
    for name in names:
        match = regex.search(os.path.basename(name))
        if not match or not match.group(1):
            raise PoscudaError(f"{name}: --groups {pattern!r} does not match this file name")
        out.append(match.group(1))
    return out
