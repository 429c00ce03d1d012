"""Walking a labeled tree and the safety rules for IN and OUT.

Rules, in one place:

* a file's label comes from a label source (labels.py): by default its first-level folder;
* audio files (by extension) are protected; other files are copied unchanged;
* audio without a label (directly in IN, or not in the metadata) is an error and is never copied;
* hidden files and folders (name starts with ".") are skipped;
* symlinked files are read through the link and written as real files;
  symlinked folders are not followed (no loops, no escaping IN).
"""

import os
from dataclasses import dataclass

from .audio import is_audio_name
from .errors import UnsafePathError
from .labels import FolderLabels, Unlabeled


@dataclass(frozen=True)
class Entry:
    relpath: str  # relative to IN, "/"-separated
    label: str  # "" for non-audio files
    audio: bool


@dataclass
class Walk:
    entries: list
    problems: list  # (relpath, reason): reported as errors, never written to OUT
    skipped: list  # (relpath, reason): left out on purpose


def check_paths(src, dst):
    """Refuse arrangements of IN and OUT that could overwrite or loop over data, before any write."""
    if not os.path.isdir(src):
        raise UnsafePathError(f"{src}: input folder does not exist or is not a folder")
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise UnsafePathError(f"{dst}: output exists and is not a folder")
    real_src, real_dst = os.path.realpath(src), os.path.realpath(dst)
    if real_src == real_dst:
        raise UnsafePathError(f"{dst}: output folder is the input folder")
    if _inside(real_dst, real_src):
        raise UnsafePathError(f"{dst}: output folder is inside the input folder {src}")
    if _inside(real_src, real_dst):
        raise UnsafePathError(f"{src}: input folder is inside the output folder {dst}")


def check_file_paths(src, dst):
    """The rules for one input file (a container): OUT is a folder that gets a file of the same name,
    which must not be the input itself."""
    if not os.path.isfile(src):
        raise UnsafePathError(f"{src}: input file does not exist")
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise UnsafePathError(f"{dst}: output exists and is not a folder")
    if os.path.realpath(dst) == os.path.realpath(os.path.dirname(os.path.abspath(src))):
        raise UnsafePathError(f"{dst}: output folder is the input file's folder (it would overwrite {src})")


def walk(src, labels=None):
    """All files under ``src`` in sorted order, with what to do with each; ``labels`` names the
    audio files' labels (default: their first-level folder)."""
    labels = labels or FolderLabels()
    result = Walk([], [], [])

    def on_error(exc):
        result.problems.append((_rel(src, exc.filename), f"cannot read folder ({exc.strerror})"))

    for folder, dirs, files in os.walk(src, onerror=on_error):
        rel_folder = _rel(src, folder)
        for name in list(dirs):
            if name.startswith(".") or os.path.islink(os.path.join(folder, name)):
                why = "hidden" if name.startswith(".") else "symlinked folder (not followed)"
                result.skipped.append((_join(rel_folder, name), why))
                dirs.remove(name)
        dirs.sort()
        for name in sorted(files):
            relpath = _join(rel_folder, name)
            if name.startswith("."):
                result.skipped.append((relpath, "hidden"))
                continue
            if not is_audio_name(name):
                result.entries.append(Entry(relpath, "", False))
                continue
            try:
                result.entries.append(Entry(relpath, labels.label_of(relpath), True))
            except Unlabeled as why:
                result.problems.append((relpath, f"{why}; not copied"))
    return result


def _rel(root, path):
    rel = os.path.relpath(path, root)
    return "" if rel == "." else rel.replace(os.sep, "/")


def _join(folder, name):
    return f"{folder}/{name}" if folder else name


def _inside(path, folder):
    return os.path.commonpath([path, folder]) == folder
