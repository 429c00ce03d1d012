"""Datasets published as containers instead of folders of audio files (the ``[formats]`` extra for
Parquet): Parquet files laid out as on the Hugging Face Hub (parquet.py) and WebDataset tar shards
(webdataset.py). ``protect`` treats each container as one unit of work: it is protected whole into
a container of the same name under OUT, written to a temporary name and renamed, recorded in the
manifest and resumed like a file. Every audio cell in it is decoded, protected with its row's label
exactly as ``protect`` protects a file of that label (cells.py), and encoded again in its own
format and subtype; every other value is left as it was.
"""

from dataclasses import dataclass

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
    import os

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


def protect_container(in_path, out_path, key, options, threads=1):
    """Protect one container into ``out_path`` (temporary name, then rename); returns a cells.Result."""
    if options.format == "parquet":
        from .parquet import protect_parquet

        return protect_parquet(in_path, out_path, key, options, threads)
    from .webdataset import protect_shard

    return protect_shard(in_path, out_path, key, options, threads)


def count_rows(path, options):
    """How many rows (samples) a container holds, for progress."""
    if options.format == "parquet":
        from .parquet import count_rows as rows
    else:
        from .webdataset import count_samples as rows
    return rows(path)
