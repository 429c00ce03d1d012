"""``poscuda audit``: does protection stop a model from learning?

Trains each attacker twice from the same seed -- on the clean training tree and on
its protected copy -- and reports both models' accuracy on a clean test set. Labels
come from the trees' first-level folders; the test set is a third tree or the files
of the training tree whose names match ``split``.
"""

import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from . import features, tree
from .embeddings import mono_float
from .errors import MissingExtraError, PoscudaError


@dataclass
class AuditRow:
    model: str
    shift: float
    clean_accuracy: float  # clean-trained, clean test
    protected_accuracy: float  # protected-trained, clean test
    protected_train_accuracy: float  # protected-trained, on its own training set


@dataclass
class Dataset:
    waves: np.ndarray  # (clips, samples) float32 mono at ``samplerate``
    labels: np.ndarray  # int indices into the audit's label list
    samplerate: int


def labeled_files(root, split=None, test=False):
    """(relpath, label) for the audio files under ``root``; with ``split``, only test or only train files."""
    walked = tree.walk(root)
    pattern = re.compile(split) if split else None
    files = []
    for entry in walked.entries:
        if not entry.audio:
            continue
        if pattern is not None and bool(pattern.search(os.path.basename(entry.relpath))) != test:
            continue
        files.append((entry.relpath, entry.label))
    if not files:
        raise PoscudaError(f"{root}: no labeled audio files{' matching the split' if split else ''}")
    return files


def load(root, files, label_index, samplerate=None, seconds=1.0, jobs=None):
    """Read ``files`` as mono float32, resampled to ``samplerate`` (default: the most common
    rate), loudness-normalised (RMS 0.1, as attackers do), padded or cropped to ``seconds``."""
    from scipy.signal import resample_poly

    def read(relpath):
        return mono_float(os.path.join(root, *relpath.split("/")))

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count()) as pool:
        clips = list(pool.map(read, [rel for rel, _ in files]))
    samplerate = samplerate or Counter(rate for _, rate in clips).most_common(1)[0][0]
    length = int(round(seconds * samplerate))
    waves = np.zeros((len(clips), length), np.float32)
    for i, (mono, rate) in enumerate(clips):
        if rate != samplerate:
            gcd = np.gcd(rate, samplerate)
            mono = resample_poly(mono, samplerate // gcd, rate // gcd)
        mono = mono[:length]
        waves[i, : len(mono)] = mono * (0.1 / max(float(np.sqrt(np.mean(mono ** 2))), 1e-8) if len(mono) else 1.0)
    try:
        labels = np.array([label_index[label] for _, label in files])
    except KeyError as exc:
        raise PoscudaError(f"{root}: label {exc.args[0]!r} does not occur in the training tree") from None
    return Dataset(waves, labels, samplerate)


def model_inputs(kind, waves, samplerate):
    """The representation an attacker eats: raw waveform, MFCC or log-mel frames."""
    if kind == "wave":
        return waves
    if kind == "mfcc":
        return features.mfcc(waves, samplerate).astype(np.float32)
    return features.log_mel(waves, samplerate).astype(np.float32)


def standardise(train, test):
    """Per-feature mean/variance from the training set (what any attacker would do)."""
    if train.ndim < 3:
        return train, test
    mean, std = train.mean(axis=(0, 1)), train.std(axis=(0, 1)) + 1e-6
    return (train - mean) / std, (test - mean) / std


def import_attackers():
    try:
        from . import attackers
    except ImportError:
        raise MissingExtraError("audit needs torch: pip install 'poscuda[audit]' (the CPU build is enough)") from None
    return attackers


def evaluate(train, test, label_count, models, epochs=15, seed=0, shift=0.0, progress=None):
    """Train each attacker on ``train`` (with and without time shift); {(model, shift): (fit, test acc)}."""
    attackers = import_attackers()
    results = {}
    for name in models:
        kind = attackers.INPUTS[name]
        train_x, test_x = standardise(model_inputs(kind, train.waves, train.samplerate),
                                      model_inputs(kind, test.waves, test.samplerate))
        for s in sorted({0.0, shift}):
            results[name, s] = attackers.train_and_test(
                name, train_x, train.labels, test_x, test.labels, label_count, epochs=epochs,
                seed=seed, shift=s, progress=progress)
    return results


def load_split(train_dir, protected_dir, test_dir=None, split=None, seconds=1.0, samplerate=None):
    """(labels, clean train, protected train, clean test) Datasets, same files in the same order."""
    if test_dir is None and split is None:
        raise PoscudaError("give a clean test tree (--test) or a --split rule")
    train_files = labeled_files(train_dir, split, test=False)
    labels = sorted({label for _, label in train_files})
    index = {label: i for i, label in enumerate(labels)}
    test_files = labeled_files(test_dir or train_dir, None if test_dir else split, test=True)
    clean = load(train_dir, train_files, index, samplerate, seconds)
    protected = load(protected_dir, train_files, index, clean.samplerate, seconds)
    test = load(test_dir or train_dir, test_files, index, clean.samplerate, seconds)
    return labels, clean, protected, test


def audit(train_dir, protected_dir, test_dir=None, split=None, models=None, epochs=15, seed=0,
          shift=0.0, seconds=1.0, samplerate=None, threads=None, progress=None):
    """Return ([AuditRow] for each model and shift, labels)."""
    attackers = import_attackers()
    if threads:
        import torch

        torch.set_num_threads(threads)
    labels, clean, protected, test = load_split(train_dir, protected_dir, test_dir, split, seconds, samplerate)
    models = models or attackers.MODELS
    on_clean = evaluate(clean, test, len(labels), models, epochs, seed, shift, progress)
    on_protected = evaluate(protected, test, len(labels), models, epochs, seed, shift, progress)
    rows = [AuditRow(name, s, on_clean[name, s][1], on_protected[name, s][1], on_protected[name, s][0])
            for name, s in on_clean]
    return rows, labels


def rows_to_dicts(rows):
    return [asdict(row) for row in rows]
