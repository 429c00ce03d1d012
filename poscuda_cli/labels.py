"""Where a file's label comes from: its folder (the default), a metadata table, or its path.

* :class:`FolderLabels` -- the first-level folder under IN (``IN/<label>/**``);
* :class:`TableLabels` -- a CSV/TSV that lists paths relative to IN and their labels
  (ESC-50, UrbanSound8K, Common Voice); read and checked whole before anything is written;
* :class:`PatternLabels` -- the first group of a regular expression on the path relative to
  IN (FSDD's flat layout: ``'^(\\d)_'``).

Every source answers ``label_of(relpath)`` with a label, or raises :class:`Unlabeled` saying
why the file has none; a bad table or pattern raises LabelsError before any file is touched.
Labels are names, never paths: empty labels and labels with a slash, a backslash, a NUL or
that are ``.``/``..`` are refused. A label's protection depends on its
name alone, so the same name gives the same bytes however it was given.
"""

import csv
import os
import re

from .errors import LabelsError


class Unlabeled(Exception):
    """This file has no label; the message says why."""


def check_label(label, where):
    """The label, or a PoscudaError naming ``where`` it came from."""
    if not label or not label.strip():
        raise LabelsError(f"{where}: empty label")
    if label in (".", "..") or any(c in label for c in "/\\\0"):
        raise LabelsError(f"{where}: label {label!r} looks like a path; labels are plain names")
    return label


class FolderLabels:
    description = "folders"

    def label_of(self, relpath):
        if "/" not in relpath:
            raise Unlabeled("audio directly in IN has no label folder")
        return relpath.split("/", 1)[0]


class PatternLabels:
    def __init__(self, pattern):
        try:
            self.regex = re.compile(pattern)
        except re.error as exc:
            raise LabelsError(f"--label-from {pattern!r}: not a regular expression ({exc})") from None
        if self.regex.groups < 1:
            raise LabelsError(f"--label-from {pattern!r}: needs a group, e.g. '^(\\d)_' (the label is group 1)")
        self.description = f"pattern {pattern}"

    def label_of(self, relpath):
        match = self.regex.search(relpath)
        if not match or match.group(1) is None:
            raise Unlabeled(f"--label-from {self.regex.pattern!r} does not match")
        return check_label(match.group(1), f"{relpath} (--label-from)")


class TableLabels:
    """Labels from a CSV or TSV file: ``path_column`` (relative to IN) and ``label_column``, by name."""

    def __init__(self, table, path_column, label_column, root, delimiter=None):
        self.table = os.fspath(table)
        self.description = f"table {os.path.basename(self.table)} ({path_column} -> {label_column})"
        self.labels = _read_table(self.table, path_column, label_column, delimiter)
        missing = sorted(p for p in self.labels if not os.path.isfile(os.path.join(root, *p.split("/"))))
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise LabelsError(f"{self.table}: lists {missing[0]}, which is not a file under {root}{more}")

    def label_of(self, relpath):
        try:
            return self.labels[relpath]
        except KeyError:
            raise Unlabeled(f"not listed in {os.path.basename(self.table)}") from None


def _read_table(path, path_column, label_column, delimiter):
    delimiter = delimiter or ("\t" if path.lower().endswith((".tsv", ".tab")) else ",")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle, delimiter=delimiter, strict=True))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelsError(f"{path}: cannot read the label table ({getattr(exc, 'strerror', None) or exc})") from None
    if not rows:
        raise LabelsError(f"{path}: the label table is empty")
    header = rows[0]
    for column in (path_column, label_column):
        if column not in header:
            raise LabelsError(f"{path}: no column {column!r} (columns: {', '.join(header)})")
    at_path, at_label = header.index(path_column), header.index(label_column)
    labels = {}
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise LabelsError(f"{path}, row {number}: {len(row)} fields, the header has {len(header)}")
        relpath = _normalise(row[at_path], f"{path}, row {number}")
        label = check_label(row[at_label].strip(), f"{path}, row {number}")
        if labels.get(relpath, label) != label:
            raise LabelsError(f"{path}, row {number}: {relpath} is listed twice, as {labels[relpath]!r} "
                               f"and as {label!r}")
        labels[relpath] = label
    return labels


def _normalise(relpath, where):
    """A table's path as a '/'-separated path inside IN; refuses absolute paths and '..'."""
    parts = [p for p in relpath.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or relpath.strip().startswith("/") or ".." in parts:
        raise LabelsError(f"{where}: path {relpath!r} is not a relative path inside IN")
    return "/".join(parts)


def from_options(root, table=None, path_column=None, label_column=None, delimiter=None, pattern=None):
    """The label source the command-line options describe (folders when none is given)."""
    if table and pattern:
        raise LabelsError("give --labels or --label-from, not both")
    if table:
        if not (path_column and label_column):
            raise LabelsError("--labels needs --path-column and --label-column")
        return TableLabels(table, path_column, label_column, root, delimiter)
    if path_column or label_column or delimiter:
        raise LabelsError("--path-column, --label-column and --delimiter go with --labels")
    return PatternLabels(pattern) if pattern else FolderLabels()
