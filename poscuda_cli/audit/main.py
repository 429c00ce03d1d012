"""``poscuda audit``: does protection stop a model from learning?

Each attacker is trained from the same seed on the clean training set and on each protected
version of it -- a protected tree on disk, or the training set protected in memory by each of
N fresh keys -- and tested on clean audio: a test tree, the training files a ``split``
pattern picks, or, with ``groups``, each group (e.g. speaker) held out in turn. Attackers are
models trained from scratch (attackers.py) and small heads on frozen pretrained encoders
(poscuda_cli/encoders, probes.py); ``defenses`` trains defended attackers too. Every training run is
kept; rows give the mean over folds and the mean, min and max over keys.
"""

from dataclasses import asdict, dataclass

import numpy as np

from .. import encoders, features
from ..errors import GateError, LabelsError, MissingExtraError, PoscudaError
from . import defenses as defense_steps
from . import probes
from .data import groups_of, label_indices, read_copy, read_labeled, waves
from .models import DEFAULT_PLAN, INPUTS, MODELS, PRETRAINED, unknown

EPOCHS = 15
AUGMENTED_EPOCHS = 30  # a defense that augments every batch learns slower: 15 epochs left it underfitting


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

    @property
    def strongest(self):
        """The row whose protected-trained attacker scores highest: what the protection is worth."""
        return max(self.rows, key=lambda row: row.protected_accuracy)

    def table(self):
        """The lines ``audit`` prints: a row per attacker, then the chance level and the strongest."""
        count = self.rows[0].keys
        spread = f"mean [min-max] over {count} keys" if count > 1 else "one key"
        named = max(12, *(len(row.model) + 2 for row in self.rows))
        width = max(12, *(len(row.defense) + 2 for row in self.rows))  # stacked defenses are long
        lines = [f"{'model':<{named}}{'shift':>6}  {'defense':<{width}}{'clean-trained':>14}  "
                 f"protected-trained ({spread})"]
        for row in self.rows:
            protected = f"{row.protected_accuracy:6.1%}"
            if row.keys > 1:
                protected += f" [{row.protected_min:.1%}-{row.protected_max:.1%}]"
            lines.append(f"{row.model:<{named}}{row.shift:>6.2f}  {row.defense:<{width}}"
                         f"{row.clean_accuracy:>14.1%}  {protected}")
        folds = self.rows[0].folds
        lines.append(f"accuracy on clean test audio{f', mean over {folds} held-out groups' if folds > 1 else ''}; "
                     f"chance {1 / len(self.labels):.1%}")
        best = self.strongest
        lines.append(f"strongest attacker: {best.model}{'' if best.defense == 'none' else ' under ' + best.defense}"
                     f"{f' (shift {best.shift:g})' if best.shift else ''}, {best.protected_accuracy:.1%} "
                     f"protected-trained against {best.clean_accuracy:.1%} clean-trained")
        return lines

    def check(self, max_accuracy):
        """Raise GateError if the strongest protected-trained attacker scores above ``max_accuracy``."""
        worst = self.strongest.protected_accuracy
        if max_accuracy is not None and worst > max_accuracy:
            raise GateError(f"a protected-trained model reached {worst:.1%} > --max-accuracy {max_accuracy:.1%}")

    def to_dict(self):
        return {"labels": self.labels, "chance": 1 / len(self.labels), "strongest": asdict(self.strongest),
                "rows": [asdict(r) for r in self.rows], "runs": [asdict(r) for r in self.runs]}


@dataclass
class Fold:
    name: str
    train: np.ndarray  # indices of the training clips
    test_set: str  # "test", or "clean" when the test clips are held-out training clips
    test: np.ndarray  # indices of the test clips in that set
    test_labels: np.ndarray


def import_attackers():
    try:
        from . import attackers
    except ImportError:
        raise MissingExtraError("audit needs torch: pip install 'poscuda[audit]' (the CPU build is enough)") from None
    return attackers


def plan(models=None, defenses=None):
    """The (model, defense) pairs to train: each model under each defense that applies to it;
    with neither given, DEFAULT_PLAN (every attacker, and the standard recipe's strongest)."""
    if models is None and defenses is None:
        return list(DEFAULT_PLAN)
    models, defenses = list(models or MODELS), list(defenses or ("none",))
    bad = unknown(models)
    if bad:
        raise PoscudaError(f"unknown attacker(s) {', '.join(bad)}; choose from {', '.join(MODELS)}")
    bad = defense_steps.invalid(defenses)
    if bad:
        raise PoscudaError(f"unknown defense(s) {', '.join(bad)}; choose from "
                           f"{', '.join(defense_steps.DEFENSES)}, or join distinct ones with '+'")
    pairs = [(m, d) for d in defenses for m in models if defense_steps.applies_to(d, INPUTS[m])]
    if not pairs:
        raise PoscudaError(f"no defense among {', '.join(defenses)} applies to {', '.join(models)} (feature steps "
                           "need a spectral front end; heads on pretrained encoders train undefended)")
    return pairs


def epochs_for(defense, epochs=None):
    """``epochs``, or by default EPOCHS, and AUGMENTED_EPOCHS under a defense that augments each batch."""
    return epochs or (AUGMENTED_EPOCHS if defense_steps.per_batch(defense) else EPOCHS)


def audit(train_dir, protected_dir=None, test_dir=None, split=None, groups=None, keys=(), models=None,
          defenses=None, epochs=None, seed=0, shift=0.0, seconds=1.0, samplerate=None, threads=None,
          progress=None, on_total=None, labels=None, test_labels=None, baseline=True, containers=None):
    """Train and test every attacker on every version and fold; returns an AuditResult.

    ``models`` and ``defenses`` (default: DEFAULT_PLAN) are trained as every pair that applies.
    ``baseline=False`` skips the clean-trained attackers (a sweep that has them already);
    rows then carry NaN as their clean accuracy.
    ``labels`` names the training files' labels, ``test_labels`` the test tree's (both label
    sources from labels.py; default: first-level folders). With ``containers`` (a
    containers.Options), every set is Parquet files or WebDataset shards (or one such file), and
    ``split`` and ``groups`` match each audio cell's file name. ``on_total(n)`` is told how many
    steps (epochs of a model trained from scratch, fits of a head) will be trained, ``progress()``
    after each.
    """
    pairs = plan(models, defenses)
    if sum(x is not None for x in (test_dir, split, groups)) != 1:
        raise PoscudaError("give exactly one of a clean test tree (--test), a --split rule or --groups")
    if protected_dir is None and not keys:
        raise PoscudaError("give a protected copy of the training tree (--protected) or fresh keys (--keys N)")
    attackers = import_attackers() if any(m not in PRETRAINED for m, _ in pairs) else None
    for kind in sorted({PRETRAINED[m] for m, _ in pairs if m in PRETRAINED}):
        encoders.require(kind)
    if threads and attackers:
        import torch

        torch.set_num_threads(threads)
    clean = read_labeled(train_dir, split, test=False, labels=labels, containers=containers)
    classes = sorted(set(clean.labels))
    if len(classes) < 2:
        raise LabelsError(f"{train_dir}: every training file has the label {classes[0]!r}; an attacker needs "
                          "two labels or more to learn")
    index = {label: i for i, label in enumerate(classes)}
    rate = samplerate or clean.samplerate
    targets = label_indices(clean.labels, index, train_dir)
    sets = {"clean": clean}
    if protected_dir is not None:
        sets["protected"] = read_copy(clean, protected_dir, containers)
    for number, key in enumerate(keys, 1):
        sets[f"key {number}"] = clean.protected(key)
    versions = list(sets) if baseline else [v for v in sets if v != "clean"]
    folds = _folds(clean, targets, test_dir, split, groups, index, sets, test_labels if test_dir else labels,
                   containers)
    inputs = _Inputs(sets, rate, seconds, threads)
    work = [(d, fold, m, s) for d in dict.fromkeys(d for _, d in pairs) for fold in folds
            for m in (m for m, dd in pairs if dd == d)
            for s in (sorted({0.0, shift}) if m not in PRETRAINED else [0.0])]
    if on_total:
        on_total(len(versions) * sum(1 if m in PRETRAINED else epochs_for(d, epochs) for d, _, m, _ in work))
    runs = []
    for defense, fold, model, s in work:
        for version in versions:
            if model in PRETRAINED:
                x, test_x = inputs.embeddings(version, model), inputs.embeddings(fold.test_set, model)
                fit, accuracy = probes.train_and_test(model, x[fold.train], targets[fold.train], test_x[fold.test],
                                                      fold.test_labels, seed=seed)
                if progress:
                    progress()
            else:
                train_x, test_x, batches = front_end(INPUTS[model], defense,
                                                     inputs.defended(version, defense)[fold.train],
                                                     inputs.waves(fold.test_set)[fold.test], rate)
                fit, accuracy = attackers.train_and_test(
                    model, train_x, targets[fold.train], test_x, fold.test_labels, len(classes),
                    epochs=epochs_for(defense, epochs), seed=seed, shift=s, progress=progress, batches=batches)
            runs.append(Run(model, s, defense, fold.name, version, fit, accuracy))
    return AuditResult(classes, summarise(runs), runs)


class _Inputs:
    """What attackers eat, computed once per set of clips: waveforms for models trained from
    scratch (and their dataset-level defenses, for one defense at a time), embeddings for heads
    on pretrained encoders (the clean set's serve every key)."""

    def __init__(self, sets, rate, seconds, threads):
        self.sets, self.rate, self.seconds, self.threads = sets, rate, seconds, threads
        self._waves, self._embeddings, self._defended = {}, {}, (None, {})

    def waves(self, name):
        if name not in self._waves:
            self._waves[name] = waves(self.sets[name], self.rate, self.seconds)
        return self._waves[name]

    def defended(self, name, defense):
        if self._defended[0] != defense:
            self._defended = (defense, {})
        done = self._defended[1]
        if name not in done:
            done[name] = defense_steps.on_dataset(defense, self.waves(name), self.rate)
        return done[name]

    def embeddings(self, name, model):
        kind = PRETRAINED[model]
        if (name, kind) not in self._embeddings:
            self._embeddings[name, kind] = encoders.embed(kind, self.sets[name], self.seconds, self.threads)
        return self._embeddings[name, kind]


def _folds(clean, targets, test_dir, split, groups, index, sets, test_labels, containers):
    everything = np.arange(len(clean.data))
    if groups is not None:
        names = np.array(groups_of(clean.names, groups))
        if len(set(names)) < 2:
            raise PoscudaError(f"--groups {groups!r} finds {len(set(names))} group(s); leave-one-out needs two")
        return [Fold(g, everything[names != g], "clean", everything[names == g], targets[names == g])
                for g in sorted(set(names))]
    root = test_dir or clean.root
    test = read_labeled(root, None if test_dir else split, test=True, labels=test_labels, containers=containers)
    missing, extra = sorted(set(index) - set(test.labels)), sorted(set(test.labels) - set(index))
    if missing or extra:
        raise LabelsError(f"{root}: the test set's labels differ from the training set's"
                          + (f"; only in training: {', '.join(missing)}" if missing else "")
                          + (f"; only in the test set: {', '.join(extra)}" if extra else ""))
    sets["test"] = test
    return [Fold("", everything, "test", np.arange(len(test.data)), label_indices(test.labels, index, root))]


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
