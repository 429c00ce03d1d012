"""``poscuda verify``: how much did protection change the audio?

Pairs ORIG and PROT by relative path, measures every pair (SNR, log-spectral
distance, peak change, fraction of samples changed) and the Fréchet Audio Distance
between the two sets' embeddings.
"""

import csv
import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from . import embeddings, executors, metrics, tree
from .errors import PoscudaError
from .frechet import frechet_distance, gaussian


@dataclass
class FileQuality:
    path: str
    snr_db: float
    lsd_db: float
    peak_change_db: float
    changed_fraction: float


@dataclass
class Report:
    fad: float
    files: list
    missing: list = field(default_factory=list)  # in ORIG, not in PROT
    extra: list = field(default_factory=list)  # in PROT, not in ORIG
    failed: list = field(default_factory=list)  # (path, reason)

    def summary(self):
        snrs = np.array([f.snr_db for f in self.files])
        finite = snrs[np.isfinite(snrs)]
        worst = sorted(self.files, key=lambda f: f.snr_db)[:5]
        return {
            "files": len(self.files), "fad": round(self.fad, 4),
            "snr_db_mean": _round(finite.mean()) if finite.size else None,
            "snr_db_median": _round(np.median(finite)) if finite.size else None,
            "snr_db_min": _round(finite.min()) if finite.size else None,
            "unchanged_files": int(np.isinf(snrs).sum()),
            "lsd_db_mean": _round(np.mean([f.lsd_db for f in self.files])) if self.files else None,
            "changed_fraction_mean": _round(np.mean([f.changed_fraction for f in self.files]), 4)
            if self.files else None,
            "worst_snr": [{"path": f.path, "snr_db": _round(f.snr_db)} for f in worst],
            "missing": self.missing, "extra": self.extra,
            "errors": [{"path": p, "reason": r} for p, r in self.failed],
        }

    def write_csv(self, path):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(FileQuality.__dataclass_fields__))
            writer.writeheader()
            for item in self.files:
                writer.writerow(asdict(item))


def _round(value, digits=2):
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def audio_paths(root):
    walked = tree.walk(root)
    return {e.relpath for e in walked.entries if e.audio}, walked.problems


def verify_trees(original, protected, backend=None, cache_dir=None, jobs=None, progress=None, on_total=None,
                 executor="local", scheduler=None):
    """Measure PROT against ORIG; returns a Report (FAD is NaN when fewer than two pairs).

    ``on_total(n)`` is told how many pairs there are, ``progress(n)`` as they finish.
    """
    for root in (original, protected):
        if not os.path.isdir(root):
            raise PoscudaError(f"{root}: not a folder")
    backend = backend or embeddings.MfccEmbedding()
    orig_paths, orig_problems = audio_paths(original)
    prot_paths, prot_problems = audio_paths(protected)
    report = Report(float("nan"), [], sorted(orig_paths - prot_paths), sorted(prot_paths - orig_paths),
                    list(orig_problems) + list(prot_problems))
    if on_total:
        on_total(len(orig_paths & prot_paths))
    results = {}
    with executors.pool(executor, jobs, scheduler) as workers:
        futures = [workers.submit(measure_pair, original, protected, rel, backend, cache_dir)
                   for rel in sorted(orig_paths & prot_paths)]
        for future in workers.as_completed(futures):
            result = future.result()
            results[result[0] if isinstance(result[0], str) else result[0].path] = result
            if progress:
                progress(1)
    ok = [results[rel] for rel in sorted(results) if results[rel][2] is not None]
    report.failed += [(rel, results[rel][1]) for rel in sorted(results) if results[rel][2] is None]
    report.files = [r[0] for r in ok]
    if ok:
        left = np.concatenate([r[1] for r in ok])
        right = np.concatenate([r[2] for r in ok])
        if len(left) >= 2 and len(right) >= 2:
            report.fad = frechet_distance(*gaussian(left), *gaussian(right))
    return report


def measure_pair(original, protected, rel, backend, cache_dir):
    """(FileQuality, original embeddings, protected embeddings), or (rel, reason, None) on error."""
    a, b = os.path.join(original, rel), os.path.join(protected, rel)
    cache = embeddings.Cache(cache_dir)
    try:
        x, rate = embeddings.mono_float(a)
        y, rate_y = embeddings.mono_float(b)
        if rate != rate_y or len(x) != len(y):
            raise PoscudaError(f"sample rate or length differs ({rate} Hz/{len(x)} vs {rate_y} Hz/{len(y)})")
        quality = FileQuality(rel, metrics.snr_db(x, y), metrics.log_spectral_distance(x, y, rate),
                              metrics.peak_change_db(x, y), metrics.changed_fraction(x, y))
        return quality, cache.embed(a, backend), cache.embed(b, backend)
    except PoscudaError as exc:
        return rel, str(exc).replace(f"{a}: ", "").replace(f"{b}: ", ""), None
