"""Datasets published as containers instead of folders of audio files (the ``[formats]`` extra for
Parquet): Parquet files laid out as on the Hugging Face Hub (parquet.py) and WebDataset tar shards
(webdataset.py). ``protect`` treats each container as one unit of work: it is protected whole into
a container of the same name under OUT, written to a temporary name and renamed, recorded in the
manifest and resumed like a file. Every audio cell in it is decoded, protected with its row's label
exactly as ``protect`` protects a file of that label (cells.py), and encoded again in its own
format and subtype; every other value is left as it was. ``verify`` and ``audit`` read the cells
(read_cells), each named by its container's relative path, "#" and its row (Parquet) or member
name (WebDataset): ``train-0.parquet#12``, ``shard-000.tar#s0001.flac``.
"""

import os
from dataclasses import dataclass

from ..errors import LabelsError, PoscudaError  # the rest is imported where it is used: the CLI imports this

FORMATS = ("tree", "parquet", "webdataset")
EXTENSIONS = {"parquet": ".parquet", "webdataset": ".tar"}


@dataclass(frozen=True)
class Options:
    """How to find the audio and the label in a container."""

    format: str  # "parquet" or "webdataset"
    audio_column: str = None  # parquet: default the one Audio-typed (or {bytes, path}) column
    label_column: str = None  # parquet: default the one ClassLabel column, else "label"
    label_member: str = "cls"  # webdataset: "cls" (KEY.cls holds the label) or "json:FIELD"

    def holds(self, relpath):
        """Whether ``relpath`` is a container of this format."""
        return relpath.lower().endswith(EXTENSIONS[self.format])


def detect(src):
    """The format of IN: "parquet" or "webdataset" when it is such a file or a folder holding such
    files and no audio files; "tree" otherwise."""
    from ..audio import is_audio_name

    if os.path.isfile(src):
        names = [src]
    else:
        names = [name for _, _, files in os.walk(src) for name in files if not name.startswith(".")]
    if any(is_audio_name(name) for name in names):
        return "tree"
    for fmt, extension in EXTENSIONS.items():
        if any(name.lower().endswith(extension) for name in names):
            return fmt
    return "tree"


def require(options):
    """Exit 6 before anything is done when the format's extra is missing."""
    if options.format == "parquet":
        from .parquet import _pyarrow

        _pyarrow()


def protect_container(in_path, out_path, key, options, threads=1, fan_out=None):
    """Protect one container into ``out_path`` (temporary name, then rename); returns a cells.Result.
    With ``fan_out`` (on a Dask worker), a Parquet file's row groups are tasks of their own."""
    if options.format == "parquet":
        from .parquet import protect_parquet

        return protect_parquet(in_path, out_path, key, options, threads, fan_out)
    from .webdataset import protect_shard

    return protect_shard(in_path, out_path, key, options, threads)


def count_rows(path, options):
    """How many rows (samples) a container holds, for progress."""
    if options.format == "parquet":
        from .parquet import count_rows as rows
    else:
        from .webdataset import count_samples as rows
    return rows(path)


def located(root, options):
    """(folder, tree.Walk) of the containers at ``root``: one file, or a folder of them (other files
    in it are entries too: protect copies them). Audio files beside the containers would be left
    unprotected or unmeasured, so they are refused, as is a folder without containers."""
    from .. import tree
    from ..audio import is_audio_name

    if os.path.isfile(root):
        only = tree.Entry(os.path.basename(root), "", False)
        return os.path.dirname(os.path.abspath(root)), tree.Walk([only], [], [])
    if not os.path.isdir(root):
        raise PoscudaError(f"{root}: not a file or a folder")
    walked = tree.walk(root)
    loose = sorted([entry.relpath for entry in walked.entries if entry.audio]
                   + [path for path, _ in walked.problems if is_audio_name(path)])
    if loose:
        raise LabelsError(f"{root}: holds audio files beside the {options.format} containers ({loose[0]}"
                          f"{f' and {len(loose) - 1} more' if len(loose) > 1 else ''}); treat them as a tree "
                          "(--format tree) or move them")
    if not any(options.holds(entry.relpath) for entry in walked.entries):
        raise LabelsError(f"{root}: no {options.format} files ({'*' + EXTENSIONS[options.format]})")
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


def parts(path, options):
    """[(part, rows)]: the units a container is read in, its row groups (Parquet) or the whole shard."""
    if options.format == "parquet":
        from .parquet import row_groups

        return list(enumerate(row_groups(path)))
    return [(None, count_rows(path, options))]


def read_cells(path, options, part=None):
    """(name, label, bytes, file name) of each audio cell of one container (or of one of its
    ``parts``), in order: name is a Parquet row number or a WebDataset member name; file name is
    the cell's own (the audio struct's ``path``, the member name), which --split and --groups match."""
    if options.format == "parquet":
        from .parquet import read_cells as cells

        return cells(path, options, part)
    from .webdataset import read_cells as cells

    return cells(path, options)


def cell_id(relpath, name):
    return f"{relpath}#{name}"


def cell_bytes(found, cell, options):
    """The bytes of the cell named ``cell`` (a cell_id) among ``found`` ({relative path: path})."""
    relpath, _, name = cell.partition("#")
    path, part = found[relpath], None
    if options.format == "parquet":
        row, rows = int(name), 0
        for part, count in parts(path, options):
            rows += count
            if row < rows:
                break
    for found_name, _, data, _ in read_cells(path, options, part):
        if str(found_name) == name:
            return data
    raise PoscudaError(f"{path}: no audio cell {name}")
