"""Parquet files as the Hugging Face Hub holds audio datasets (pyarrow, the ``[formats]`` extra).

An audio column is a struct of ``bytes`` (a whole WAV, FLAC, MP3 or Ogg file) and ``path``; the
label is a ``ClassLabel`` integer, whose names the file's ``huggingface`` schema metadata lists,
or a string. The output has the input's schema (metadata included), row groups, row order and
compression; only the ``bytes`` of the audio column change. One row group is in memory at a time.
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
    return _pyarrow()[1].ParquetFile(path).metadata.num_rows


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
        found = [audio_column] if audio_column else (typed or [n for n in names if is_audio(n)])
        if len(found) != 1 or found[0] not in names or not is_audio(found[0]):
            what = f"column {audio_column!r} holds no" if audio_column else "no single column holds"
            raise LabelsError(f"{path}: {what} audio ({{bytes, path}} structs); columns: {', '.join(names)}; "
                              "choose with --audio-column")
        self.audio = found[0]
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


def protect_parquet(in_path, out_path, key, options, threads=1):
    pa, pq = _pyarrow()
    try:
        source = pq.ParquetFile(in_path)
    except (OSError, pa.ArrowException) as exc:
        raise PoscudaError(f"{in_path}: not a readable Parquet file ({exc})") from None
    columns = Columns(source.schema_arrow, in_path, options.audio_column, options.label_column)
    metadata = source.metadata
    codec = metadata.row_group(0).column(0).compression if metadata.num_row_groups else "SNAPPY"
    result, start = Result(rows=metadata.num_rows), 0
    tmp = temp_name(out_path)
    try:
        with ThreadPoolExecutor(threads) as pool, \
                pq.ParquetWriter(tmp, source.schema_arrow, compression=_CODECS.get(codec, codec)) as writer:
            for index in range(metadata.num_row_groups):
                table = _protect_group(source.read_row_group(index), columns, key, start, pool, result)
                start += len(table)
                if not result.failed:  # after a failure, go on only to name every bad row
                    writer.write_table(table, row_group_size=max(len(table), 1))
        if not result.failed:
            os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return result


_CODECS = {"UNCOMPRESSED": "NONE"}  # the footer's name for no compression, and the writer's


def _protect_group(table, columns, key, start, pool, result):
    """``table`` with its audio cells protected; failures go to ``result.failed``."""
    pa = _pyarrow()[0]
    position = table.schema.get_field_index(columns.audio)
    cells = table.column(columns.audio).combine_chunks()
    labels = table.column(columns.label).to_pylist()
    data = cells.field("bytes").to_pylist()

    def one(row):
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
            result.add(outcome)
            protected.append(outcome.data)
    fields = [cells.type.field(i) for i in range(cells.type.num_fields)]
    arrays = [pa.array(protected, type=f.type) if f.name == "bytes" else cells.field(f.name) for f in fields]
    column = pa.StructArray.from_arrays(arrays, fields=fields, mask=cells.is_null())
    return table.set_column(position, table.schema.field(position), column)
