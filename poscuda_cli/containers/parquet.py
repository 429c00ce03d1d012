"""Parquet files as the Hugging Face Hub holds audio datasets (pyarrow, the ``[formats]`` extra).

An audio column is a struct of ``bytes`` (a whole WAV, FLAC, MP3 or Ogg file) and ``path``; the
label is a ``ClassLabel`` integer, whose names the file's ``huggingface`` schema metadata lists,
or a string. The output has the input's schema (metadata included), row groups, row order, and each
column chunk's compression, statistics and dictionary setting; only the ``bytes`` of the audio
column change. One row group is in memory at a time.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor

from ..audio import temp_name
from ..errors import LabelsError, MissingExtraError, PoscudaError
from .cells import Result, protect_cell


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise MissingExtraError("Parquet needs pyarrow: pip install 'poscuda[formats]'") from None
    return pyarrow, pyarrow.parquet


def count_rows(path):
    return _open(path).metadata.num_rows


def _open(path):
    pa, pq = _pyarrow()
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise PoscudaError(f"{path}: not a readable Parquet file ({exc})") from None


def row_groups(path):
    """The row groups' row counts: verify reads a file one row group at a time."""
    metadata = _open(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def read_cells(path, options, group=None):
    """(row, label, bytes, file name) of each audio cell, in row order (only row group ``group``
    when given); a row without audio is left out, a bad label raises PoscudaError."""
    pa = _pyarrow()[0]
    source = _open(path)
    columns = Columns(source.schema_arrow, path, options.audio_column, options.label_column)
    count = source.metadata.num_row_groups
    if group is not None and group >= count:
        raise PoscudaError(f"{path}: no row group {group} (it has {count})")
    groups = range(count) if group is None else [group]
    start = _first_row(source.metadata, groups)
    for index in groups:
        try:
            table = source.read_row_group(index, columns=[columns.audio, columns.label])
        except (OSError, pa.ArrowException) as exc:
            raise PoscudaError(f"{path}: row group {index} does not read ({exc})") from None
        cells = table.column(columns.audio).combine_chunks()
        data = cells.field("bytes").to_pylist()
        names = _paths(cells)
        labels = table.column(columns.label).to_pylist()
        for row, cell in enumerate(data):
            if cell is None:
                continue
            try:
                label = columns.label_of(labels[row], start + row)
            except PoscudaError as exc:
                raise PoscudaError(f"{path}: {exc}") from None
            yield start + row, label, cell, names[row] or str(start + row)
        start += len(table)


def _paths(cells):
    """The ``path`` of each audio cell (None where the struct has no such field)."""
    return cells.field("path").to_pylist() if cells.type.get_field_index("path") >= 0 else [None] * len(cells)


def _first_row(metadata, groups):
    """The number in the whole file of the first row of row groups ``groups`` (a range or list)."""
    return sum(metadata.row_group(i).num_rows for i in range(groups[0])) if len(groups) else 0


class Columns:
    """Which column holds the audio and which the label, and the label names of a ClassLabel."""

    def __init__(self, schema, path, audio_column=None, label_column=None):
        pa = _pyarrow()[0]
        features = _features(schema)
        names = schema.names

        def is_audio(name):
            kind = schema.field(name).type
            return pa.types.is_struct(kind) and {kind.field(i).name for i in range(kind.num_fields)} >= {"bytes"}

        typed = [n for n in names if features.get(n, {}).get("_type") == "Audio"]
        held = typed or [n for n in names if is_audio(n)]
        found = [audio_column] if audio_column else held
        if len(found) != 1 or found[0] not in names or not is_audio(found[0]):
            what = f"column {audio_column!r} holds no" if audio_column else "no single column holds"
            raise LabelsError(f"{path}: {what} audio ({{bytes, path}} structs); columns: {', '.join(names)}; "
                              "choose with --audio-column")
        self.audio = found[0]
        self.other_audio = [n for n in held if n != self.audio]  # protect refuses these: they would go out as they are
        classes = [n for n in names if features.get(n, {}).get("_type") == "ClassLabel"]
        label = label_column or (classes[0] if len(classes) == 1 else "label" if "label" in names else None)
        if label not in names or label == self.audio:
            raise LabelsError(f"{path}: no label column{' ' + repr(label_column) if label_column else ''}; "
                              f"columns: {', '.join(names)}; choose with --label-column")
        self.label = label
        self.names = features.get(label, {}).get("names")

    def label_of(self, value, row):
        """The label name of a label cell: a ClassLabel's name for its integer, or the string itself."""
        if value is None:
            raise PoscudaError(f"row {row}: no label")
        if isinstance(value, int) and self.names is not None:
            if not 0 <= value < len(self.names):
                raise PoscudaError(f"row {row}: label {value} is not one of the {len(self.names)} ClassLabel names")
            return self.names[value]
        return str(value)


def _features(schema):
    """The Hugging Face features in the schema's metadata ({column: feature dict}), if any."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        return json.loads(raw)["info"]["features"] if raw else {}
    except (ValueError, KeyError, TypeError):
        return {}


def protect_parquet(in_path, out_path, key, options, threads=1, fan_out=None):
    """Protect a Parquet file into ``out_path``: here on ``threads`` threads, or with ``fan_out``
    (executors.fan_out, on a Dask worker) one task per row group, each writing a piece beside
    ``out_path`` that is then joined into it."""
    source = None if fan_out is None else _open(in_path)
    if source is None or source.metadata.num_row_groups < 2:
        return protect_row_groups(in_path, out_path, key, options, threads)
    pieces = [temp_name(f"{out_path}.{index}") for index in range(source.metadata.num_row_groups)]
    try:
        result = Result.merged(fan_out(protect_row_groups, [(in_path, piece, key, options, 1, index)
                                                            for index, piece in enumerate(pieces)]))
        if not result.failed:
            pq = _pyarrow()[1]
            _write(source, out_path, (pq.read_table(piece) for piece in pieces))
        return result
    finally:
        for piece in pieces:
            if os.path.exists(piece):
                os.unlink(piece)


def protect_row_groups(in_path, out_path, key, options, threads=1, group=None):
    """Protect the row groups of a Parquet file (or only row group ``group``) into a file of their
    own at ``out_path``, not written if a cell fails; returns a cells.Result."""
    source = _open(in_path)
    columns = Columns(source.schema_arrow, in_path, options.audio_column, options.label_column)
    if columns.other_audio:
        raise LabelsError(f"{in_path}: holds audio in column(s) {', '.join(columns.other_audio)} besides "
                          f"{columns.audio!r}; poscuda protects one audio column a file, and the others would "
                          "go out unprotected")
    metadata = source.metadata
    groups = range(metadata.num_row_groups) if group is None else [group]
    result = Result(rows=sum(metadata.row_group(i).num_rows for i in groups))

    def protected():
        start = _first_row(metadata, groups)
        with ThreadPoolExecutor(threads) as pool:
            for index in groups:
                table = _protect_group(source.read_row_group(index), columns, key, start, pool, result)
                start += len(table)
                yield None if result.failed else table  # after a failure, go on only to name every bad row

    _write(source, out_path, protected())
    return result


def _write(source, out_path, tables):
    """Write ``tables`` as the row groups of a file with ``source``'s schema (metadata included) and
    column chunk settings (_settings), to a temporary name renamed ``out_path`` at the end; if
    ``tables`` gives a None, nothing is written."""
    pq = _pyarrow()[1]
    tmp, complete = temp_name(out_path), True
    try:
        with pq.ParquetWriter(tmp, source.schema_arrow, **_settings(source.metadata)) as writer:
            for table in tables:
                complete = complete and table is not None
                if complete:
                    writer.write_table(table, row_group_size=max(len(table), 1))
        if complete:
            os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _settings(metadata):
    """ParquetWriter's arguments that write each column chunk as the file's own: its codec, whether
    it has statistics and a dictionary page. The footer does not hold a codec's level (pyarrow's
    default is used); a writer writes every row group alike, so the first row group's stand for all."""
    if not metadata.num_row_groups:
        return {}
    chunks = [metadata.row_group(0).column(i) for i in range(metadata.num_columns)]
    return {"compression": {c.path_in_schema: _CODECS.get(c.compression, c.compression) for c in chunks},
            "write_statistics": [c.path_in_schema for c in chunks if c.is_stats_set],
            "use_dictionary": [c.path_in_schema for c in chunks if c.has_dictionary_page]}


_CODECS = {"UNCOMPRESSED": "NONE"}  # the footer's name for no compression, and the writer's


def _protect_group(table, columns, key, start, pool, result):
    """``table`` with its audio cells protected; failures go to ``result.failed``."""
    pa = _pyarrow()[0]
    position = table.schema.get_field_index(columns.audio)
    cells = table.column(columns.audio).combine_chunks()
    labels = table.column(columns.label).to_pylist()
    data = cells.field("bytes").to_pylist()
    paths = _paths(cells)

    def one(row):
        if data[row] is None and paths[row]:
            return (f"row {start + row}: no audio bytes, only a path ({paths[row]}) to a file outside this one, "
                    "which protect cannot reach: embed the audio in the file, as the Hub's Parquet files do")
        if data[row] is None:
            return None
        try:
            return protect_cell(data[row], columns.label_of(labels[row], start + row), key, f"row {start + row}")
        except PoscudaError as exc:
            message = str(exc)
            return message if message.startswith("row ") else f"row {start + row}: {message}"

    protected = []
    for row, outcome in enumerate(pool.map(one, range(len(table)))):
        if isinstance(outcome, str):
            result.failed.append(outcome)
            protected.append(data[row])
        elif outcome is None:
            protected.append(None)
        else:
            result.add(outcome.counts)
            protected.append(outcome.data)
    fields = [cells.type.field(i) for i in range(cells.type.num_fields)]
    arrays = [pa.array(protected, type=f.type) if f.name == "bytes" else cells.field(f.name) for f in fields]
    column = pa.StructArray.from_arrays(arrays, fields=fields, mask=cells.is_null())
    return table.set_column(position, table.schema.field(position), column)


class Parquet:
    """Parquet files, as containers/__init__.py handles every format (Options.kind)."""

    require = staticmethod(_pyarrow)
    count_rows = staticmethod(count_rows)
    protect = staticmethod(protect_parquet)
    read_cells = staticmethod(read_cells)

    @staticmethod
    def parts(path):
        """[(row group, rows)]: verify reads a file one row group at a time."""
        return list(enumerate(row_groups(path)))

    @staticmethod
    def part_of(path, name):
        """The row group holding row ``name``."""
        row, rows = int(name), 0
        for group, count in enumerate(row_groups(path)):
            rows += count
            if row < rows:
                return group
        return None
