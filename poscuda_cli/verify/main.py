"""``poscuda verify``: how much did protection change the audio, and would a listener mind?

Pairs ORIG and PROT by relative path (or the audio cells of Parquet files and WebDataset shards
by container and row or member) and measures the pairs in chunks of files, or a row group or
shard at a time (worker processes locally, or Dask tasks): SNR, log-spectral distance, peak
change and fraction of samples changed always; PESQ, STOI/ESTOI and speaker similarity with the
``[quality]`` extra. FAD compares Gaussians of the two sets' embeddings, accumulated chunk by chunk.
"""

import csv
import math
import os
from dataclasses import asdict, dataclass, field, fields
from itertools import zip_longest

import numpy as np

from .. import containers, executors, tree
from ..audio import mono_float
from ..errors import GateError, PoscudaError, printable
from ..encoders import speaker
from . import embeddings, metrics, perceptual
from .frechet import Moments, frechet_distance

PERCEPTUAL = ("pesq", "stoi", "speaker")
CHUNK_BYTES = 256 << 10  # at least this much original audio per task (a batch for the speaker encoder)


@dataclass
class FileQuality:
    path: str
    label: str
    samplerate: int
    seconds: float
    snr_db: float
    lsd_db: float
    peak_change_db: float
    changed_fraction: float
    pesq: float = None
    pesq_mode: str = None  # "nb" (8 kHz) or "wb" (16 kHz)
    stoi: float = None
    estoi: float = None
    speaker_similarity: float = None
    not_measured: str = ""  # why a requested metric has no value, "; "-separated


@dataclass(frozen=True)
class Plan:
    """What every pair is measured with (picklable: it travels to worker processes)."""

    perceptual: tuple = ()  # a subset of PERCEPTUAL
    embedding: str = "mfcc"
    weights: str = None
    cache_dir: str = None


@dataclass
class Chunk:
    files: list
    failed: list  # (relpath, reason)
    original: Moments
    protected: Moments


@dataclass(frozen=True)
class Gates:
    """verify's --max-fad/--min-* limits: a run outside any of them is a GateError (exit 7)."""

    max_fad: float = None
    min_snr: float = None
    min_file_snr: float = None
    min_pesq: float = None
    min_stoi: float = None
    min_speaker_sim: float = None

    @property
    def perceptual(self):
        """The perceptual metrics these gates need measured."""
        gated = {"pesq": self.min_pesq, "stoi": self.min_stoi, "speaker": self.min_speaker_sim}
        return tuple(name for name, gate in gated.items() if gate is not None)


@dataclass
class Report:
    fad: float
    files: list
    missing: list = field(default_factory=list)  # in ORIG, not in PROT
    extra: list = field(default_factory=list)  # in PROT, not in ORIG
    failed: list = field(default_factory=list)  # (path, reason)
    plan: Plan = Plan()

    @property
    def not_measured(self):
        return [(f.path, f.not_measured) for f in self.files if f.not_measured]

    def summary(self):
        snr = _stats([f.snr_db for f in self.files])
        out = {"files": len(self.files), "embedding": self.plan.embedding, "fad": _round(self.fad, 4),
               "snr_db_mean": snr["mean"], "snr_db_median": snr["median"], "snr_db_min": snr["min"],
               "unchanged_files": sum(1 for f in self.files if math.isinf(f.snr_db)),
               "lsd_db_mean": _stats([f.lsd_db for f in self.files])["mean"],
               "changed_fraction_mean": _stats([f.changed_fraction for f in self.files], 4)["mean"],
               "worst_snr": _worst(self.files, "snr_db")}
        if "pesq" in self.plan.perceptual:
            pesq = _stats([f.pesq for f in self.files])
            modes = sorted({f.pesq_mode for f in self.files if f.pesq_mode})
            out.update({"pesq_mode": "+".join(modes) or None, "pesq_mean": pesq["mean"],
                        "pesq_median": pesq["median"], "pesq_min": pesq["min"], "pesq_measured": pesq["count"],
                        "worst_pesq": _worst(self.files, "pesq")})
        if "stoi" in self.plan.perceptual:
            out.update({"stoi_mean": _stats([f.stoi for f in self.files], 3)["mean"],
                        "estoi_mean": _stats([f.estoi for f in self.files], 3)["mean"],
                        "stoi_measured": _stats([f.stoi for f in self.files])["count"]})
        if "speaker" in self.plan.perceptual:
            similarity = _stats([f.speaker_similarity for f in self.files], 4)
            out.update({"speaker_similarity_mean": similarity["mean"], "speaker_similarity_min": similarity["min"],
                        "speaker_measured": similarity["count"],
                        "worst_speaker_similarity": _worst(self.files, "speaker_similarity", 4)})
        out["per_label"] = self.per_label()
        out.update({"not_measured": [{"path": p, "reason": r} for p, r in self.not_measured],
                    "missing": self.missing, "extra": self.extra,
                    "errors": [{"path": p, "reason": r} for p, r in self.failed]})
        return out

    def per_label(self):
        """Files, mean SNR and (where measured) mean PESQ and speaker similarity of each label:
        every label has its own filter, so quality differs from label to label."""
        out = {}
        for label in sorted({f.label for f in self.files}):
            mine = [f for f in self.files if f.label == label]
            item = {"files": len(mine), "snr_db_mean": _stats([f.snr_db for f in mine])["mean"]}
            if "pesq" in self.plan.perceptual:
                item["pesq_mean"] = _stats([f.pesq for f in mine])["mean"]
            if "speaker" in self.plan.perceptual:
                item["speaker_similarity_mean"] = _stats([f.speaker_similarity for f in mine], 4)["mean"]
            out[label] = item
        return out

    def check(self, gates):
        """Raise GateError naming every limit of ``gates`` (a Gates) this report is outside."""
        summary = self.summary()
        means = {"pesq": summary.get("pesq_mean"), "stoi": summary.get("stoi_mean"),
                 "speaker": summary.get("speaker_similarity_mean")}
        labels = {"pesq": "mean PESQ", "stoi": "mean STOI", "speaker": "mean speaker similarity"}
        flags = {"pesq": "--min-pesq", "stoi": "--min-stoi", "speaker": "--min-speaker-sim"}
        gated = {"pesq": gates.min_pesq, "stoi": gates.min_stoi, "speaker": gates.min_speaker_sim}
        violations = []
        if gates.max_fad is not None and not self.fad <= gates.max_fad:
            violations.append(f"FAD {self.fad:.4g} > --max-fad {gates.max_fad}")
        if gates.min_snr is not None and not (summary["snr_db_mean"] is None or
                                              summary["snr_db_mean"] >= gates.min_snr):
            violations.append(f"mean SNR {summary['snr_db_mean']} dB < --min-snr {gates.min_snr}")
        if gates.min_file_snr is not None and summary["snr_db_min"] is not None and \
                summary["snr_db_min"] < gates.min_file_snr:
            violations.append(f"file SNR {summary['snr_db_min']} dB < --min-file-snr {gates.min_file_snr}")
        for name, gate in gated.items():
            if gate is not None and not (means[name] is not None and means[name] >= gate):
                violations.append(f"{labels[name]} {means[name]} < {flags[name]} {gate}")
        if violations:
            raise GateError("; ".join(violations))

    def write_csv(self, path):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(FileQuality)])
            writer.writeheader()
            for item in self.files:
                writer.writerow({k: "" if v is None else printable(v) if isinstance(v, str) else v
                                 for k, v in asdict(item).items()})


def summary_lines(summary):
    """The text ``verify`` prints for a Report's ``summary()``."""
    lines = [f"files        {summary['files']} ({summary['unchanged_files']} unchanged)",
             f"FAD          {summary['fad']} ({summary['embedding']} embedding)",
             f"SNR dB       mean {summary['snr_db_mean']}  median {summary['snr_db_median']}  "
             f"min {summary['snr_db_min']}",
             f"LSD dB       mean {summary['lsd_db_mean']}",
             f"changed      {summary['changed_fraction_mean']} of samples (mean)"]
    if "pesq_mean" in summary:
        lines.append(f"PESQ {summary['pesq_mode'] or '':<7} mean {summary['pesq_mean']}  median "
                     f"{summary['pesq_median']}  min {summary['pesq_min']}  ({summary['pesq_measured']} measured)")
    if "stoi_mean" in summary:
        lines.append(f"STOI         mean {summary['stoi_mean']}  ESTOI mean {summary['estoi_mean']}  "
                     f"({summary['stoi_measured']} measured)")
    if "speaker_similarity_mean" in summary:
        lines.append(f"speaker sim  mean {summary['speaker_similarity_mean']}  min "
                     f"{summary['speaker_similarity_min']}  ({summary['speaker_measured']} measured)")
    lines += [f"  worst SNR  {item['snr_db']:>7} dB  {item['path']}" for item in summary["worst_snr"]]
    lines += [f"  worst PESQ {item['pesq']:>10}  {item['path']}" for item in summary.get("worst_pesq", [])]
    return lines


def _round(value, digits=2):
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def _stats(values, digits=2):
    """Mean, median, min and count of the finite values (None where there are none)."""
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if not finite.size:
        return {"mean": None, "median": None, "min": None, "count": 0}
    return {"mean": _round(finite.mean(), digits), "median": _round(np.median(finite), digits),
            "min": _round(finite.min(), digits), "count": int(finite.size)}


def _worst(files, name, digits=2, count=5):
    scored = [f for f in files if getattr(f, name) is not None and math.isfinite(getattr(f, name))]
    return [{"path": f.path, name: _round(getattr(f, name), digits)}
            for f in sorted(scored, key=lambda f: getattr(f, name))[:count]]


def audio_files(root, labels=None):
    """{relpath: label} of the audio under ``root``, and the walk's problems."""
    walked = tree.walk(root, labels)
    return {e.relpath: e.label for e in walked.entries if e.audio}, walked.problems


def check_plan(plan):
    """Fail before any work when the plan needs an extra that is missing or bad weights."""
    if set(plan.perceptual) - set(PERCEPTUAL):
        raise PoscudaError(f"unknown metric(s) {', '.join(sorted(set(plan.perceptual) - set(PERCEPTUAL)))}")
    if {"pesq", "stoi"} & set(plan.perceptual):
        perceptual.require()
    if "speaker" in plan.perceptual:
        speaker.require()
    embeddings.backend(plan.embedding, plan.weights)


def verify_trees(original, protected, plan=Plan(), jobs=None, progress=None, on_total=None,
                 executor="local", scheduler=None, labels=None, processes=False, containers=None):
    """Measure PROT against ORIG as ``plan`` says; returns a Report (FAD is NaN with fewer than two vectors).

    ``labels`` is a label source (labels.py; default: first-level folders). With ``containers``
    (a containers.Options), ORIG and PROT are Parquet files or WebDataset shards (or one such file
    each), paired by name, and their audio cells by row or member; a cell is reported as
    ``<container>#<row or member>``. ``on_total(n)`` is told how many pairs there are,
    ``progress(n)`` as they finish. Locally the pairs run in threads, or with ``processes`` in
    worker processes (PESQ holds the GIL; the command line uses them; a script that asks for them
    needs Python's ``if __name__ == "__main__":`` guard).
    """
    check_plan(plan)
    if containers is None:
        report, pairs = _paired_files(original, protected, plan, labels)
        total = len(pairs)
    else:
        report, parts = _paired_parts(original, protected, plan, containers)
        total = sum(rows for *_, rows in parts)
    if on_total:
        on_total(total)
    left, right = Moments(), Moments()
    with executors.pool(executor, jobs, scheduler, processes=processes) as workers:
        if containers is None:
            sizes = [os.path.getsize(os.path.join(original, rel)) for rel, _ in pairs]
            chunks = executors.batches(pairs, sizes, max(workers.batch_bytes, CHUNK_BYTES))
            futures = [workers.submit(measure_chunk, original, protected, chunk, plan) for chunk in chunks]
        else:
            futures = [workers.submit(measure_part, *part[:4], containers, plan) for part in parts]
        for future in workers.as_completed(futures):
            chunk = future.result()
            report.files += chunk.files
            report.failed += chunk.failed
            left.merge(chunk.original)
            right.merge(chunk.protected)
            if progress:
                progress(len(chunk.files) + len(chunk.failed))
    report.files.sort(key=lambda f: f.path)
    report.failed.sort()
    if left.count >= 2 and right.count >= 2:
        report.fad = frechet_distance(*left.gaussian(), *right.gaussian())
    return report


def _paired_files(original, protected, plan, labels):
    """An empty Report naming the files only one tree holds, and the pairs [(relpath, label)]."""
    for root in (original, protected):
        if not os.path.isdir(root):
            raise PoscudaError(f"{root}: not a folder")
    orig_files, orig_problems = audio_files(original, labels)
    prot_files, prot_problems = audio_files(protected, labels)
    report = Report(float("nan"), [], sorted(orig_files.keys() - prot_files.keys()),
                    sorted(prot_files.keys() - orig_files.keys()), list(orig_problems) + list(prot_problems), plan)
    return report, sorted((rel, orig_files[rel]) for rel in orig_files.keys() & prot_files.keys())


def _paired_parts(original, protected, plan, options):
    """An empty Report naming the containers only one side holds, and the parts to measure:
    [(ORIG's container, PROT's, its relative path, part, rows)]."""
    mine, theirs = containers.counterparts(original, protected, options)
    report = Report(float("nan"), [], sorted(mine.keys() - theirs.keys()), sorted(theirs.keys() - mine.keys()),
                    plan=plan)
    parts = []
    for rel in sorted(mine.keys() & theirs.keys()):
        try:
            parts += [(mine[rel], theirs[rel], rel, part, rows) for part, rows in options.kind.parts(mine[rel])]
        except PoscudaError as exc:
            report.failed.append((rel, str(exc).replace(f"{mine[rel]}: ", "")))
    return report, parts


def measure_chunk(original, protected, pairs, plan):
    """Measure ``pairs`` [(relpath, label)] of files: a Chunk with their FileQuality, errors and
    embeddings' moments."""
    def loaded(rel, label):
        a, b = os.path.join(original, rel), os.path.join(protected, rel)
        try:
            return rel, label, _checked(_file(a), _file(b))
        except PoscudaError as exc:
            return rel, label, PoscudaError(str(exc).replace(f"{a}: ", "").replace(f"{b}: ", ""))

    return _measure((loaded(rel, label) for rel, label in pairs), plan)


def measure_part(original, protected, relpath, part, options, plan):
    """Measure the audio cells of one part (Options.kind.parts) of the container ``original`` against
    those of ``protected``, its protected copy, read side by side: a Chunk, as for files."""
    def loaded():
        try:
            for mine, theirs in zip_longest(options.kind.read_cells(original, options, part),
                                            options.kind.read_cells(protected, options, part)):
                if mine is None or theirs is None or mine[0] != theirs[0]:
                    raise PoscudaError(f"PROT's cells stop matching ORIG's at {(mine or theirs)[0]}")
                yield containers.cell_id(relpath, mine[0]), mine[1], _cells(mine[2], theirs[2])
        except PoscudaError as exc:
            message = str(exc).replace(f"{original}: ", "ORIG: ").replace(f"{protected}: ", "PROT: ")
            yield relpath, "", PoscudaError(message)

    return _measure(loaded(), plan)


def _file(path):
    return (*mono_float(path), path)


def _cells(a, b):
    """The pair of two audio cells' bytes, or the PoscudaError why it cannot be measured."""
    try:
        return _checked((*mono_float(a, "ORIG"), a), (*mono_float(b, "PROT"), b))
    except PoscudaError as exc:
        return exc


def _checked(first, second):
    """The pair ((x, info, content), (y, info, content)) once it is fit to measure."""
    _check_pair(first[0], first[1], second[1])
    return first, second


def _measure(items, plan):
    """Measure ``items`` [(name, label, pair or the PoscudaError why there is none)]: a Chunk."""
    chunk = Chunk([], [], Moments(), Moments())
    backend = embeddings.backend(plan.embedding, plan.weights)
    cache = embeddings.Cache(plan.cache_dir)
    clips = []
    for name, label, pair in items:
        if isinstance(pair, PoscudaError):
            chunk.failed.append((name, str(pair)))
            continue
        (x, info_x, a), (y, _, b) = pair
        rate = info_x.samplerate
        quality = FileQuality(name, label, rate, round(len(x) / rate, 3), metrics.snr_db(x, y),
                              metrics.log_spectral_distance(x, y, rate), metrics.peak_change_db(x, y),
                              metrics.changed_fraction(x, y))
        _perceptual(quality, x, y, rate, plan.perceptual)
        if plan.embedding != "speaker":  # speaker vectors come from the batch below
            chunk.original.add(cache.embed(a, backend, (x, rate)))
            chunk.protected.add(cache.embed(b, backend, (y, rate)))
        chunk.files.append(quality)
        clips.append((x, y, rate))
    if plan.embedding == "speaker" or "speaker" in plan.perceptual:
        _speaker(chunk, clips, plan)
    return chunk


def _check_pair(x, info_x, info_y):
    if (info_x.samplerate, info_x.channels, info_x.frames) != (info_y.samplerate, info_y.channels, info_y.frames):
        raise PoscudaError(f"ORIG and PROT differ: {_shape(info_x)} vs {_shape(info_y)}")
    if not np.any(x):
        raise PoscudaError("the original is silent: there is nothing to measure")


def _shape(info):
    return f"{info.samplerate} Hz, {info.channels} ch, {info.frames} frames"


def _perceptual(quality, x, y, rate, wanted):
    reasons = []
    if "pesq" in wanted:
        try:
            quality.pesq, quality.pesq_mode = perceptual.pesq_score(x, y, rate)
        except perceptual.NotMeasured as exc:
            reasons.append(str(exc))
    if "stoi" in wanted:
        try:
            quality.stoi, quality.estoi = perceptual.stoi_scores(x, y, rate)
        except perceptual.NotMeasured as exc:
            reasons.append(str(exc))
    quality.not_measured = "; ".join(reasons)


def _speaker(chunk, clips, plan):
    """Speaker embeddings of the whole chunk in one batch: similarity per pair, partials for FAD."""
    if not clips:
        return
    utterances, partials = speaker.embed([(x, rate) for x, _, rate in clips] + [(y, rate) for _, y, rate in clips])
    count = len(clips)
    for i, quality in enumerate(chunk.files):
        a, b = utterances[i], utterances[count + i]
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            quality.not_measured = "; ".join(filter(None, [quality.not_measured, "speaker: the encoder found no voice"]))
            continue
        if "speaker" in plan.perceptual:
            quality.speaker_similarity = speaker.similarity(a, b)
        if plan.embedding == "speaker":
            chunk.original.add(partials[i])
            chunk.protected.add(partials[count + i])
