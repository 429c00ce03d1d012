"""Turn bench/results/efficacy.jsonl into the sweep table (markdown, stdout) and docs/results.png.

    python bench/efficacy_report.py [--plot docs/results.png]
"""

import argparse
import json
import os

HERE = os.path.dirname(__file__)
MODELS = ("cnn-avg", "cnn-flat", "raw", "lstm", "transformer")


def load(path):
    rows = {}
    with open(path) as handle:
        for line in handle:
            row = json.loads(line)
            rows[(row["config"], row["epochs"])] = {**rows.get((row["config"], row["epochs"]), {}), **row}
    return list(rows.values())


def table(rows):
    """Attackers every configuration was run with (the final table has the rest)."""
    columns = [m for m in MODELS if all(m in r for r in rows)]
    head = ["config", "family", "layout", "epochs", "mean SNR dB", "mean LSD dB", "FAD", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: -r["snr_db"]):
        cells = [r["config"], r["params"]["filter"], r["params"]["layout"], str(r["epochs"]),
                 f"{r['snr_db']:.1f}", f"{r['lsd_db']:.1f}", f"{r['fad']:.2f}" if "fad" in r else ""]
        cells += [f"{r[m]:.0f}% ({r[m + ':clean']:.0f}%)" for m in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), sharey=True)
    markers = {"cnn-avg": "o", "cnn-flat": "s", "raw": "^", "lstm": "D", "transformer": "P"}
    colours = {"lowpass": "tab:red", "bandstop": "tab:blue"}
    for ax, metric, label in ((axes[0], "snr_db", "mean SNR of protected vs original (dB)"),
                              (axes[1], "lsd_db", "mean log-spectral distance (dB)"),
                              (axes[2], "fad", "FAD (MFCC embedding; docs/verify.md)")):
        for r in (r for r in rows if metric in r):
            for model, marker in markers.items():
                if model in r:
                    ax.scatter(r[metric], r[model], marker=marker, color=colours[r["params"]["filter"]],
                               alpha=0.75, s=40)
        ax.axhline(10, color="grey", lw=0.8, ls=":")
        ax.axhline(20, color="green", lw=0.8, ls="--")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].axvline(20, color="green", lw=0.8, ls="--")
    axes[0].set_ylabel("clean-test accuracy of protected-trained attacker (%)")
    handles = [plt.Line2D([], [], marker=m, ls="", color="k", label=n) for n, m in markers.items()]
    handles += [plt.Line2D([], [], marker="o", ls="", color=c, label=f) for f, c in colours.items()]
    axes[2].legend(handles=handles, fontsize=8, loc="best")
    fig.suptitle("FSDD, train split protected, clean test split (chance 10%; target ≤ 20% at ≥ 20 dB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", default=os.path.join(HERE, "results/efficacy.jsonl"))
    parser.add_argument("--plot", default=os.path.join(HERE, "../docs/results.png"))
    args = parser.parse_args()
    rows = load(args.results)
    print(table(rows))
    plot(rows, args.plot)


if __name__ == "__main__":
    main()
