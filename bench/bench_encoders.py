"""How long audit's pretrained encoders take to embed FSDD (3,000 clips, 8 kHz), on this machine.

kws: resampling to 16 kHz, centring in a 2-s window, the ONNX front end one clip at a time and
the embedding net in batches (onnxruntime, every core). speaker: resemblyzer's preprocessing and
encoder (torch). Baseline in the same process: reading the clips (audit reads them once for all
attackers). Writes bench/results-encoders.md.

    python bench/bench_encoders.py
"""

import os
import platform
import sys
import time
from datetime import date

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from efficacy_sweep import DATA  # noqa: E402
from poscuda_cli import encoders  # noqa: E402
from poscuda_cli.audit.data import labeled_files, read_clips  # noqa: E402


def main():
    root = DATA["fsdd"][0]
    started = time.perf_counter()
    clips = read_clips(root, labeled_files(root))
    read = time.perf_counter() - started
    rows = [("read the 3,000 clips", read)]
    for kind in ("kws", "speaker"):
        started = time.perf_counter()
        vectors = encoders.embed(kind, clips)
        rows.append((f"embed with {kind} {tuple(vectors.shape[1:])}", time.perf_counter() - started))
        print(rows[-1], flush=True)
    lines = [f"# audit's pretrained encoders on FSDD ({date.today()}, {platform.machine()}, {os.cpu_count()} cores)",
             "", "`python bench/bench_encoders.py`. Clean sets are embedded once per audit and serve every key.", "",
             "| step | seconds | clips per second | against reading |", "|---|---|---|---|"]
    lines += [f"| {name} | {seconds:.1f} | {len(clips.data) / seconds:.0f} | {seconds / read:.0f}x |"
              for name, seconds in rows]
    with open(os.path.join(HERE, "results-encoders.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
