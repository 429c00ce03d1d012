"""The protect pipeline: IN/<label>/** -> OUT/<label>/**, or containers (Parquet files, WebDataset
shards) into containers of the same names; resumable and parallel."""

import glob
import os
import time
from dataclasses import dataclass, field

from . import audio, executors, tree
from .containers import located, without_containers
from .counts import Counts
from .errors import PoscudaError
from .labels import FolderLabels
from .manifest import Manifest, OutputLock, Record
from .stream import protect_file_in_blocks
from .signature.transform import protect_clip

# Files with more samples than this (about 2 min of 48 kHz stereo) are processed in
# blocks, so memory does not grow with file length.
STREAM_SAMPLES = 1 << 22
# Worker processes pay off when files are small on average: then the per-file Python work, which
# holds the GIL, is most of the run. Bigger files spend their time in the filter and libsndfile,
# which release it, and threads spare the processes' start-up (bench/results.md). Containers,
# however big, hold small files (cells): they always go to processes when those are asked for
# (3,000 cells in 4 Parquet files, 2 jobs: 1.75 s, against 3.88 s in threads and 3.18 s in one).
PROCESS_MEAN_BYTES = 512 << 10


@dataclass
class Summary(Counts):
    """A run: the Counts of the clips it protected (audio files, or containers' cells) and the rest."""

    key_fingerprint: str = ""
    copied: int = 0
    resumed: int = 0
    wall_seconds: float = 0.0
    failed: list = field(default_factory=list)  # [(relpath, reason)]
    skipped: list = field(default_factory=list)  # [(relpath, reason)]
    containers: int = 0  # Parquet files or tar shards written

    @property
    def protected(self):
        return self.clips

    def to_dict(self):
        return {"key_fingerprint": self.key_fingerprint, "protected": self.protected,
                "copied": self.copied, "resumed": self.resumed, "failed": len(self.failed),
                "errors": [{"path": p, "reason": r} for p, r in self.failed],
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
                "samples": self.samples, "changed_fraction": round(self.changed_fraction, 6),
                "clipped_samples": self.clipped, "audio_seconds": round(self.seconds, 3),
                "wall_seconds": round(self.wall_seconds, 3), "labels": dict(sorted(self.labels.items())),
                "containers": self.containers}


@dataclass
class _FileResult:
    entry: tree.Entry
    record: Record
    counts: Counts = field(default_factory=Counts)  # nothing for a copied file
    rows: int = 1  # what progress counts: one per file, a container's rows
    container: bool = False


def protect_tree(src, dst, key, jobs=None, force=False, fail_fast=False, progress=None, on_total=None,
                 executor="local", scheduler=None, labels=None, processes=False, containers=None):
    """Protect every labeled audio file under ``src`` into ``dst``; returns a Summary.

    ``labels`` is a label source (labels.py; default: each file's first-level folder).
    Bad files are recorded in ``Summary.failed`` and the rest is done (or, with
    ``fail_fast``, the run stops at the first). ``on_total(n)`` is told how many files
    there are, then ``progress(n)`` is called as they finish. ``executor="dask"`` runs
    the files on a Dask cluster (executors.py). Locally, files run in ``jobs`` threads, or
    with ``processes`` in worker processes where the files to do average under
    PROCESS_MEAN_BYTES or are containers, forked where executors._start_method allows (else spawned, and then a
    script calling this needs the ``if __name__ == "__main__":`` guard). With ``containers`` (a
    containers.Options), ``src`` is a folder of Parquet files or tar shards, or one such file, and
    each is protected whole; ``progress`` then counts rows.
    """
    started = time.perf_counter()
    if containers is not None:
        containers.kind.require()
    if containers is None:
        tree.check_paths(src, dst)
        walked_labels = labels or FolderLabels()
        walked = without_containers(tree.walk(src, walked_labels))
        if not walked.entries and not walked.problems:
            why = f"{walked.skipped[0][0]}: {walked.skipped[0][1]}" if walked.skipped else "empty input folder"
            raise PoscudaError(f"{src}: no files to protect ({why})")
    else:
        (tree.check_file_paths if os.path.isfile(src) else tree.check_paths)(src, dst)
        src, walked = located(src, containers)
    rows = {entry.relpath: _rows(src, entry, containers) for entry in walked.entries} if containers else {}
    if on_total:
        on_total(sum(rows.get(entry.relpath, 1) for entry in walked.entries))
    summary = Summary(key_fingerprint=key.fingerprint, failed=list(walked.problems), skipped=list(walked.skipped))
    if fail_fast and summary.failed:
        return summary
    os.makedirs(dst, exist_ok=True)
    with OutputLock(dst):
        _remove_stale_temps(dst)
        options = containers.describe() if containers else {"format": "tree", "labels": walked_labels.description}
        manifest = Manifest(dst, key, options, force=force)
        try:
            todo, sizes = [], []
            for entry in walked.entries:
                in_path, out_path = _paths(src, dst, entry)
                try:
                    stat = os.stat(in_path)
                    done = manifest.is_done(entry, stat, out_path)
                except OSError as exc:
                    summary.failed.append((entry.relpath, f"cannot stat ({exc.strerror})"))
                    continue
                if done:
                    summary.resumed += 1
                    if progress:
                        progress(rows.get(entry.relpath, 1))
                else:
                    todo.append(entry)
                    sizes.append(stat.st_size)
            if todo:
                processes = processes and (containers is not None or sum(sizes) < PROCESS_MEAN_BYTES * len(sizes))
                with executors.pool(executor, jobs, scheduler, processes=processes, fork=True) as workers:
                    # in threads, a long file's blocks are filtered on every job's core (files are mostly
                    # short); in N worker processes, each has 1/N of the jobs
                    _run(workers, executors.batches(todo, sizes, workers.batch_bytes), src, dst, key,
                         workers.threads, fail_fast, manifest, summary, progress, containers)
        finally:
            manifest.close()
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _rows(src, entry, containers):
    """What progress counts for ``entry``: one file, or a container's rows."""
    if not containers.holds(entry.relpath):
        return 1
    try:
        return containers.kind.count_rows(_paths(src, src, entry)[0])
    except Exception:  # noqa: BLE001 -- an unreadable container is reported when it is protected
        return 1


def _run(workers, batches, src, dst, key, threads, fail_fast, manifest, summary, progress, containers=None):
    futures = [workers.submit(_protect_batch, src, dst, key, batch, threads, fail_fast, containers)
               for batch in batches]
    for future in workers.as_completed(futures):  # each file is recorded as soon as its batch lands
        for outcome in future.result():
            if isinstance(outcome, _EntryError):
                summary.failed.append((outcome.entry.relpath, outcome.reason))
            else:
                _record_result(outcome, manifest, summary)
            if progress:
                progress(outcome.rows)
        if fail_fast and summary.failed:
            break


def _record_result(result, manifest, summary):
    manifest.add(result.record)
    if result.entry.audio or result.container:
        summary.containers += result.container
        summary.add(result.counts)
    else:
        summary.copied += 1


class _EntryError(Exception):
    rows = 1

    def __init__(self, entry, reason):
        super().__init__(reason)
        self.entry, self.reason = entry, reason

    def __reduce__(self):  # travels back from Dask workers
        return _EntryError, (self.entry, self.reason)


def _protect_batch(src, dst, key, entries, threads=1, fail_fast=False, containers=None):
    """Protect (or copy) ``entries``: a _FileResult or an _EntryError for each, in order (with
    ``fail_fast``, up to the first error); a file long enough to stream, or a container's cells, on
    ``threads`` threads."""
    outcomes = []
    for entry in entries:
        try:
            outcomes.append(_protect_one(src, dst, key, entry, threads, containers))
        except _EntryError as error:
            outcomes.append(error)
            if fail_fast:
                break
    return outcomes


def _protect_one(src, dst, key, entry, threads, containers=None):
    in_path, out_path = _paths(src, dst, entry)
    try:
        stat = os.stat(in_path)
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
        if containers is not None and containers.holds(entry.relpath):
            done = containers.kind.protect(in_path, out_path, key, containers, threads, executors.fan_out())
            if done.failed:
                more = f" (and {len(done.failed) - 3} more)" if len(done.failed) > 3 else ""
                raise _EntryError(entry, "; ".join(done.failed[:3]) + more + "; not written")
            return _FileResult(entry, _record(entry, stat, out_path), done, done.rows, container=True)
        if not entry.audio:
            audio.copy_atomic(in_path, out_path)
            return _FileResult(entry, _record(entry, stat, out_path))
        plan = key.label_plan(entry.label)
        with audio.opened(in_path) as (handle, info):
            try:
                if info.frames * info.channels > STREAM_SAMPLES and not info.lossy:
                    samples, changed, clipped = protect_file_in_blocks(handle, out_path, plan, info,
                                                                       threads=threads)
                else:
                    data = audio.read_all(handle, in_path, info)
                    result = protect_clip(data, plan, info.samplerate, info.bits)
                    audio.write_atomic(out_path, result.audio, info)
                    samples, changed, clipped = data.size, result.changed, result.clipped
            except ValueError as exc:
                raise _EntryError(entry, str(exc)) from None
        return _FileResult(entry, _record(entry, stat, out_path),
                           Counts.clip(entry.label, samples, changed, clipped, info.frames / info.samplerate))
    except PoscudaError as exc:
        raise _EntryError(entry, _without_path(str(exc), in_path, out_path)) from None
    except OSError as exc:
        raise _EntryError(entry, exc.strerror or str(exc)) from None


def _record(entry, stat, out_path):
    return Record(entry.relpath, stat.st_size, stat.st_mtime_ns, os.path.getsize(out_path), entry.label)


def _paths(src, dst, entry):
    parts = entry.relpath.split("/")
    return os.path.join(src, *parts), os.path.join(dst, *parts)


def _without_path(message, *paths):
    """Errors are reported next to the relative path already; drop the absolute one."""
    for path in paths:
        prefix = f"{path}: "
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _remove_stale_temps(dst):
    """Temporary files of an interrupted run; ours by name, never a finished output."""
    for path in glob.glob(os.path.join(glob.escape(dst), "**", "*" + audio.TEMP_SUFFIX),
                          recursive=True, include_hidden=True):
        os.unlink(path)
