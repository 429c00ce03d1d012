"""``poscuda audit``: does protection stop a model from learning?

Each attacker is trained from the same seed on the clean training set and on each protected
version of it -- a protected tree on disk, or the training set protected in memory by each of
N fresh keys -- and tested on clean audio: a test tree, the training files a ``split``
pattern picks, or, with ``groups``, each group (e.g. speaker) held out in turn. ``defenses``
trains defended attackers too. Every training run is kept; rows give the mean over folds and
the mean, min and max over keys.
"""

from dataclasses import asdict, dataclass

import numpy as np

from .. import features
from ..errors import MissingExtraError, PoscudaError
from . import defenses as defense_steps
from .data import groups_of, label_indices, labeled_files, read_clips, waves


@dataclass
class Run:
    model: str
    shift: float
    defense: str
    fold: str  # the held-out group, or "" without --groups
    version: str  # "clean", "protected" (the tree given) or "key N"
    train_accuracy: float  # on its own training set
    test_accuracy: float  # on the clean test set


@dataclass
class AuditRow:
    model: str
    shift: float
    defense: str
    clean_accuracy: float  # clean-trained, clean test (mean over folds)
    protected_accuracy: float  # protected-trained, clean test: mean over keys of the mean over folds
    protected_min: float
    protected_max: float
    protected_train_accuracy: float  # protected-trained, on its own training set (mean)
    keys: int
    folds: int


@dataclass
class AuditResult:
    labels: list
    rows: list
    runs: list

    def to_dict(self):
        return {"labels": self.labels, "chance": 1 / len(self.labels),
                "rows": [asdict(r) for r in self.rows], "runs": [asdict(r) for r in self.runs]}


@dataclass
class Fold:
    name: str
    train: np.ndarray  # indices of the training clips
    test_waves: np.ndarray
    test_labels: np.ndarray


def import_attackers():
    try:
        from . import attackers
    except ImportError:
        raise MissingExtraError("audit needs torch: pip install 'poscuda[audit]' (the CPU build is enough)") from None
    return attackers


def audit(train_dir, protected_dir=None, test_dir=None, split=None, groups=None, keys=(), models=None,
          defenses=("none",), epochs=15, seed=0, shift=0.0, seconds=1.0, samplerate=None, threads=None,
          progress=None, on_total=None, labels=None, test_labels=None, baseline=True):
    """Train and test every attacker on every version and fold; returns an AuditResult.

    ``baseline=False`` skips the clean-trained attackers (a sweep that has them already);
    rows then carry NaN as their clean accuracy.
    ``labels`` names the training files' labels, ``test_labels`` the test tree's (both label
    sources from labels.py; default: first-level folders). ``on_total(n)`` is told how many
    epochs will be trained, ``progress()`` after each.
    """
    attackers = import_attackers()
    if sum(x is not None for x in (test_dir, split, groups)) != 1:
        raise PoscudaError("give exactly one of a clean test tree (--test), a --split rule or --groups")
    if protected_dir is None and not keys:
        raise PoscudaError("give a protected copy of the training tree (--protected) or fresh keys (--keys N)")
    unknown = defense_steps.invalid(defenses)
    if unknown:
        raise PoscudaError(f"unknown defense(s) {', '.join(unknown)}; choose from "
                           f"{', '.join(defense_steps.DEFENSES)}, or join distinct ones with '+'")
    if threads:
        import torch

        torch.set_num_threads(threads)
    models = list(models or attackers.MODELS)
    train_files = labeled_files(train_dir, split, test=False, labels=labels)
    classes = sorted({label for _, label in train_files})
    index = {label: i for i, label in enumerate(classes)}
    clean = read_clips(train_dir, train_files)
    rate = samplerate or clean.samplerate
    targets = label_indices(clean.labels, index, train_dir)
    clean_waves = waves(clean, rate, seconds)
    versions = {"clean": clean_waves} if baseline else {}
    if protected_dir is not None:
        versions["protected"] = waves(read_clips(protected_dir, train_files), rate, seconds)
    for number, key in enumerate(keys, 1):
        versions[f"key {number}"] = waves(clean.protected(key), rate, seconds)
    folds = _folds(clean, clean_waves, targets, test_dir, split, groups, index, rate, seconds,
                   test_labels if test_dir else labels)
    work = [(defense, fold, model, s) for defense in defenses for fold in folds for model in models
            for s in sorted({0.0, shift}) if defense_steps.applies_to(defense, attackers.INPUTS[model])]
    if on_total:
        on_total(len(work) * len(versions) * epochs)
    runs, defended = [], {}
    for defense, fold, model, s in work:
        if defense not in defended:
            defended = {defense: {name: defense_steps.on_dataset(defense, w, rate) for name, w in versions.items()}}
        for version, train_waves in defended[defense].items():
            train_x, test_x, batches = front_end(attackers.INPUTS[model], defense, train_waves[fold.train],
                                                 fold.test_waves, rate)
            fit, accuracy = attackers.train_and_test(
                model, train_x, targets[fold.train], test_x, fold.test_labels, len(classes), epochs=epochs,
                seed=seed, shift=s, progress=progress, batches=batches)
            runs.append(Run(model, s, defense, fold.name, version, fit, accuracy))
    return AuditResult(classes, summarise(runs), runs)


def _folds(clean, clean_waves, targets, test_dir, split, groups, index, rate, seconds, test_labels):
    everything = np.arange(len(clean.data))
    if groups is not None:
        names = np.array(groups_of(clean.relpaths, groups))
        if len(set(names)) < 2:
            raise PoscudaError(f"--groups {groups!r} finds {len(set(names))} group(s); leave-one-out needs two")
        return [Fold(g, everything[names != g], clean_waves[names == g], targets[names == g])
                for g in sorted(set(names))]
    root = test_dir or clean.root
    test = read_clips(root, labeled_files(root, None if test_dir else split, test=True, labels=test_labels))
    return [Fold("", everything, waves(test, rate, seconds), label_indices(test.labels, index, root))]


def front_end(kind, defense, train_waves, test_waves, samplerate):
    """(training inputs, test inputs, batch maker or None) of one attacker under one defense.

    Inputs are standardised per feature with the training set's statistics, as any attacker
    would. A defense that draws per batch gets a batch maker that augments each batch afresh.
    """
    def inputs(w, rng=None):
        if rng is not None:
            w = defense_steps.on_batch(defense, w, samplerate, rng)
        if kind == "wave":
            return w
        mel = features.log_mel(w, samplerate)
        if rng is not None:
            mel = defense_steps.on_log_mel(defense, mel, rng)
        x = features.cepstra(mel) if kind == "mfcc" else mel
        return defense_steps.on_features(defense, x).astype(np.float32)

    train_x, test_x = inputs(train_waves), inputs(test_waves)
    mean, std = 0.0, 1.0
    if train_x.ndim == 3:
        mean, std = train_x.mean(axis=(0, 1)), train_x.std(axis=(0, 1)) + 1e-6
    batches = None
    if defense_steps.per_batch(defense):
        def batches(idx, rng):
            return (inputs(train_waves[idx], rng) - mean) / std
    return (train_x - mean) / std, (test_x - mean) / std, batches


def summarise(runs):
    """One AuditRow per (model, shift, defense), in the order the runs were made."""
    rows = []
    for model, shift, defense in dict.fromkeys((r.model, r.shift, r.defense) for r in runs):
        mine = [r for r in runs if (r.model, r.shift, r.defense) == (model, shift, defense)]
        folds = sorted({r.fold for r in mine})
        per_version = {}
        for r in mine:
            per_version.setdefault(r.version, []).append(r)
        clean = float(np.mean([r.test_accuracy for r in per_version.pop("clean", [])] or [np.nan]))
        means = [float(np.mean([r.test_accuracy for r in rs])) for rs in per_version.values()]
        fits = [r.train_accuracy for rs in per_version.values() for r in rs]
        rows.append(AuditRow(model, shift, defense, clean, float(np.mean(means)), min(means), max(means),
                             float(np.mean(fits)), len(means), len(folds)))
    return rows
