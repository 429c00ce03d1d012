"""Tables and the frontier plot of docs/results.md, from bench/results/efficacy.jsonl.

    python bench/efficacy_report.py [--out docs/results.png] > tables.md

Accuracies are on clean test audio: "clean" is the clean-trained attacker (mean over its runs),
"protected" the protected-trained one as mean [min-max] over keys (each key's value being its
mean over held-out groups where there are several).
"""

import argparse
import json
import os
from collections import defaultdict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
QUALITY = ("snr_db", "lsd_db", "fad", "pesq")
EPOCHS = 10  # the plot's training length (longer runs, e.g. for SpecAugment, are tables only)


def load(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def groups(rows, *fields):
    out = defaultdict(list)
    for row in rows:
        out[tuple(row[f] for f in fields)].append(row)
    return out


def cell(rows, clean):
    """'mean [min-max]' over keys of the protected runs, and the mean of ``clean`` runs, in percent."""
    clean = [r["test_accuracy"] for r in clean]
    per_key = defaultdict(list)
    for r in rows:
        if r["key"] is not None:
            per_key[r["key"]].append(r["test_accuracy"])
    means = [np.mean(v) for v in per_key.values()]
    protected = f"{100 * np.mean(means):.0f} [{100 * min(means):.0f}-{100 * max(means):.0f}]" if means else "-"
    return (f"{100 * np.mean(clean):.0f}" if clean else "-"), protected, len(means)


def quality(rows):
    """Mean over keys of each key's quality (the same for every run of a key)."""
    per_key = {r["key"]: r for r in rows if r["key"] is not None}
    return {q: np.mean([r[q] for r in per_key.values() if r.get(q) is not None]) for q in QUALITY
            if any(r.get(q) is not None for r in per_key.values())}


def table(rows, experiment, data, by="shift"):
    mine = [r for r in rows if r["experiment"] == experiment and r["data"] == data]
    if not mine:
        return ""
    baseline = "levels" if experiment == "fitted" else experiment  # clean-trained runs are shared
    clean_runs = groups([r for r in rows if r["experiment"] == baseline and r["data"] == data and r["key"] is None],
                        "model", by, "epochs")
    models = list(dict.fromkeys(r["model"] for r in mine))
    lines = []
    for (config, epochs), config_rows in groups([r for r in mine if r["key"] is not None], "config", "epochs").items():
        q = quality(config_rows)
        keys = len({r["key"] for r in config_rows})
        measured = len({r["key"] for r in config_rows if r.get("snr_db") is not None})
        of = f"quality of {measured}: " if measured < keys else ""
        lines.append(f"\n**{config}**, {epochs} epochs ({keys} keys; {of}mean SNR {q.get('snr_db', float('nan')):.1f} dB, "
                     f"LSD {q.get('lsd_db', float('nan')):.1f} dB, FAD {q.get('fad', float('nan')):.2f}, "
                     f"PESQ {q.get('pesq', float('nan')):.2f})\n")
        variants = list(dict.fromkeys(r[by] for r in config_rows))
        lines += ["| attacker | " + " | ".join(f"clean / protected ({by} {v})" for v in variants) + " |",
                  "|---|" + "---|" * len(variants)]
        for model in models:
            cells = []
            for v in variants:
                clean, protected, _ = cell([r for r in config_rows if r["model"] == model and r[by] == v],
                                           clean_runs.get((model, v, epochs), []))
                cells.append(f"{clean} / **{protected}**" if protected != "-" else "n/a")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kind_of(model):
    if model == "raw":
        return "raw waveform"
    return "kws encoder" if model.startswith("kws-") else "speaker encoder" if model.startswith("speaker-") \
        else "MFCC/log-mel"


MARKERS = {"MFCC/log-mel": "o", "raw waveform": "^", "kws encoder": "s"}
PROBE_COLOURS = {"poison": "black", "push": "gold", "families": "magenta", "frontier": "red"}


def frontier(rows, out, probes=()):
    """Protected-trained accuracy against PESQ and against SNR: one point per configuration, key and attacker kind
    (from-scratch models trained for EPOCHS; heads on the kws encoder), and the robust probes' kws-linear."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in rows if r["experiment"] in ("levels", "fitted") and r["data"] == "fsdd" and r["shift"] == 0
            and r["key"] is not None and r["epochs"] == EPOCHS]
    figure, axes = plt.subplots(1, 2, figsize=(11, 5.2), sharey=True, layout="constrained")
    colours, labelled = {}, set()
    for (config, key, kind), group in groups([dict(r, kind=kind_of(r["model"])) for r in mine
                                              if kind_of(r["model"]) in MARKERS], "config", "key", "kind").items():
        colour = colours.setdefault(config, f"C{len(colours) % 10}")
        accuracy = 100 * np.mean([r["test_accuracy"] for r in group])
        marker = MARKERS[kind]
        for axis, metric in zip(axes, ("pesq", "snr_db")):
            if group[0][metric] is None:  # a key whose quality was not measured
                continue
            first = config not in labelled and kind == "MFCC/log-mel" and metric == "pesq"
            if first:
                labelled.add(config)
            axis.scatter(group[0][metric], accuracy, color=colour, marker=marker, s=36, label=config if first else None)
    for row in probes:  # robust_probe.py: signatures tried against the kws encoder (kws-linear)
        if row.get("pesq") is None or "kws-linear" not in row:
            continue
        name = "probe: sample-wise poison" if row["probe"] == "poison" else f"probe: {row['probe']}"
        first = name not in labelled
        labelled.add(name)
        colour = colours.setdefault(name, PROBE_COLOURS.get(row["probe"], "magenta"))
        for axis, metric in zip(axes, ("pesq", "snr_db")):
            axis.scatter(row[metric], 100 * row["kws-linear"], color=colour, marker="D", s=30,
                         label=name if first and metric == "pesq" else None)
    for axis, label in zip(axes, ("PESQ of the protected training set", "mean SNR (dB)")):
        axis.set_xlabel(label)
        axis.axhline(20, color="grey", linewidth=0.8, linestyle="--")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("protected-trained accuracy on clean test (%)")
    figure.legend(loc="outside lower center", ncol=4, fontsize=7, title_fontsize=7,
                  title="o MFCC/log-mel models (mean)   ^ raw-waveform model   s kws encoder + head (mean)   "
                        "D robust probes (kws-linear)")
    figure.suptitle("FSDD: each point is one key of one configuration (chance 10%)", fontsize=10)
    figure.savefig(out, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=os.path.join(HERE, "results/efficacy.jsonl"))
    parser.add_argument("--probes", default=os.path.join(HERE, "results/robust.jsonl"))
    parser.add_argument("--out", default=os.path.join(HERE, "../docs/results.png"))
    args = parser.parse_args()
    rows = load(args.results)
    probes = load(args.probes) if os.path.exists(args.probes) else []
    for title, experiment, data, by in (("Strength levels, FSDD standard split", "levels", "fsdd", "shift"),
                                        ("Defended attackers, FSDD", "defenses", "fsdd", "defense"),
                                        ("Unseen speakers, FSDD (leave one speaker out)", "speakers", "fsdd", "shift"),
                                        ("Unseen speech: the 16 kHz spoken-word set", "levels", "speech16k", "shift"),
                                        ("FSDD labelled by speaker (6 labels)", "levels", "fsdd-speakers", "shift"),
                                        ("Defended attackers, 16 kHz set", "defenses", "speech16k", "defense"),
                                        ("Learned filters, FSDD", "fitted", "fsdd", "shift"),
                                        ("Learned filters, 16 kHz set", "fitted", "speech16k", "shift")):
        text = table(rows, experiment, data, by)
        if text:
            print(f"\n### {title}\n{text}")
    frontier(rows, args.out, probes)


if __name__ == "__main__":
    main()
