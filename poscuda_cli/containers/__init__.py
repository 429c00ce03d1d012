"""Datasets published as containers instead of folders of audio files (the ``[formats]`` extra for
Parquet): Parquet files laid out as on the Hugging Face Hub (parquet.py) and WebDataset tar shards
(webdataset.py). ``protect`` treats each container as one unit of work: it is protected whole into
a container of the same name under OUT, written to a temporary name and renamed, recorded in the
manifest and resumed like a file. Every audio cell in it is decoded, protected with its row's label
exactly as ``protect`` protects a file of that label (cells.py), and encoded again in its own
format and subtype; every other value is left as it was. ``verify`` and ``audit`` read the cells
(``read_cells``), each named by its container's relative path, "#" and its row (Parquet) or member
name (WebDataset): ``train-0.parquet#12``, ``shard-000.tar#s0001.flac``. Each format is a class
with the same static methods (parquet.Parquet, webdataset.WebDataset), chosen once by
``Options.kind``; this module keeps what is common: detection, where the containers are, names.
"""

import os
from dataclasses import dataclass

from ..errors import LabelsError, PoscudaError  # the rest is imported where it is used: the CLI imports this

FORMATS = ("tree", "parquet", "webdataset")
# compressed shards count as shards, so that they are never copied as other files are
EXTENSIONS = {"parquet": (".parquet",), "webdataset": (".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar.zst")}


@dataclass(frozen=True)
class Options:
    """How to find the audio and the label in a container."""

    format: str  # "parquet" or "webdataset"
    audio_column: str = None  # parquet: default the one Audio-typed (or {bytes, path}) column
    label_column: str = None  # parquet: default the one ClassLabel column, else "label"
    label_member: str = "cls"  # webdataset: "cls" (KEY.cls holds the label) or "json:FIELD"

    def describe(self):
        """The options that decide what is written, as OUT's manifest records them."""
        if self.format == "parquet":
            return {"format": self.format, "audio_column": self.audio_column, "label_column": self.label_column}
        return {"format": self.format, "label_member": self.label_member}

    @property
    def kind(self):
        """The format's class, chosen once: parquet.Parquet or webdataset.WebDataset, each with the same
        static methods (require, count_rows, protect, parts, read_cells, part_of). Imported on first
        use: the command line imports this module, and pyarrow loads slowly."""
        if self.format == "parquet":
            from .parquet import Parquet

            return Parquet
        from .webdataset import WebDataset

        return WebDataset

    def holds(self, relpath):
        """Whether ``relpath`` is a container of this format."""
        return format_of(relpath) == self.format


def format_of(name):
    """The container format a file name says ("parquet", "webdataset"), or None."""
    return next((fmt for fmt, extensions in EXTENSIONS.items() if os.fspath(name).lower().endswith(extensions)), None)


def detect(src):
    """The format of IN: "tree", "parquet" or "webdataset", by the files the tree walk visits (hidden
    ones are not). IN holding more than one kind is refused (exit 2) before anything is written: as a
    tree its containers would be copied unprotected, as containers its audio files left out."""
    from .. import tree

    if os.path.isfile(src):
        return format_of(src) or "tree"
    kinds = {}
    for entry in tree.walk(src, _EveryName()).entries:
        kind = "tree" if entry.audio else format_of(entry.relpath)
        if kind:
            kinds.setdefault(kind, []).append(entry.relpath)
    if len(kinds) > 1:
        found = [kind for kind in _KINDS if kind in kinds]
        held = " and ".join(f"{_KINDS[kind]} ({_first(kinds[kind])})" for kind in found)
        raise LabelsError(f"{src}: holds {held}; pick one kind with "
                          f"{' or '.join('--format ' + kind for kind in found)} (the others are then listed as "
                          "skipped and not written), or move them apart")
    return next(iter(kinds), "tree")


_KINDS = {"tree": "audio files", "parquet": "Parquet files", "webdataset": "tar shards"}


class _EveryName:
    """A label source for detection: every audio file counts, wherever it is."""

    def label_of(self, relpath):
        return ""


def _first(paths):
    return paths[0] + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")


def without_containers(walked):
    """A tree's walk with its Parquet files and tar shards moved to the skipped: copied as they are,
    they would go out unprotected."""
    kept = []
    for entry in walked.entries:
        fmt = None if entry.audio else format_of(entry.relpath)
        if fmt:
            walked.skipped.append((entry.relpath, f"{_KINDS[fmt][:-1]}, not copied unprotected "
                                                  f"(protect it with --format {fmt})"))
        else:
            kept.append(entry)
    walked.entries = kept
    return walked


def located(root, options):
    """(folder, tree.Walk) of the containers at ``root``: one file, or a folder of them. Other files
    in it are entries too (protect copies them), except audio files and containers of another
    format, which are listed as skipped: copied, they would go out unprotected. A folder without
    containers of this format is refused."""
    from .. import tree

    if os.path.isfile(root):
        if not options.holds(root):
            raise LabelsError(f"{root}: not a {options.format} file ({', '.join('*' + e for e in EXTENSIONS[options.format])})")
        only = tree.Entry(os.path.basename(root), "", False)
        return os.path.dirname(os.path.abspath(root)), tree.Walk([only], [], [])
    if not os.path.isdir(root):
        raise PoscudaError(f"{root}: not a file or a folder")
    walked = tree.walk(root, _EveryName())
    kept = []
    for entry in walked.entries:
        fmt = "tree" if entry.audio else format_of(entry.relpath)
        if fmt in (None, options.format):
            kept.append(entry)
        else:
            walked.skipped.append((entry.relpath, f"{_KINDS[fmt][:-1]} beside the {_KINDS[options.format]}, not "
                                                  f"written (--format {options.format})"))
    walked.entries = kept
    if not any(options.holds(entry.relpath) for entry in kept):
        raise LabelsError(f"{root}: no {options.format} files ({', '.join('*' + e for e in EXTENSIONS[options.format])})")
    return root, walked


def containers_at(root, options):
    """{relative path: path} of the containers at ``root`` (one file, or a folder), in sorted order."""
    folder, walked = located(root, options)
    return {entry.relpath: os.path.join(folder, *entry.relpath.split("/"))
            for entry in walked.entries if options.holds(entry.relpath)}


def counterparts(original, protected, options):
    """The containers of ORIG and of PROT, each {relative path: path}. When ORIG is one file, PROT
    is that file's protected copy, or a folder holding it under the same name (what protect writes)."""
    mine = containers_at(original, options)
    if not os.path.isfile(original):
        return mine, containers_at(protected, options)
    (name, _), = mine.items()
    copy = protected if os.path.isfile(protected) else os.path.join(protected, name)
    return mine, {name: copy} if os.path.isfile(copy) else {}


def cell_id(relpath, name):
    return f"{relpath}#{name}"


def cell_bytes(found, cell, options):
    """The bytes of the cell named ``cell`` (a cell_id) among ``found`` ({relative path: path})."""
    relpath, _, name = cell.partition("#")
    path = found[relpath]
    for found_name, _, data, _ in options.kind.read_cells(path, options, options.kind.part_of(path, name)):
        if str(found_name) == name:
            return data
    raise PoscudaError(f"{path}: no audio cell {name}")
