"""Protect throughput against a plain soundfile copy of the same tree (issue: speed).

Builds a synthetic labeled tree (16 kHz PCM_16 clips of 1-2 s plus a few long files),
then measures in one process: the copy baseline and protect at --jobs 1 and 2, the
kernel alone against a numpy reference, and start-up costs. Writes bench/results.md.

    python bench/bench_protect.py [--clips 2000] [--long 3] [--long-minutes 10]
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from poscuda_cli.kernel import filter_ranges  # noqa: E402
from poscuda_cli.key import generate_key  # noqa: E402
from poscuda_cli.params import PRESETS  # noqa: E402
from poscuda_cli.protect import protect_tree  # noqa: E402

RATE = 16000


def build_tree(root, clips, long_files, long_minutes):
    rng = np.random.default_rng(0)
    labels = [f"label{i}" for i in range(10)]
    for i in range(clips):
        n = int(RATE * rng.uniform(1, 2))
        path = os.path.join(root, labels[i % 10], f"clip{i:05d}.wav")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sf.write(path, (rng.standard_normal(n) * 3000).astype(np.int16), RATE, subtype="PCM_16")
    for i in range(long_files):
        path = os.path.join(root, labels[i % 10], f"long{i}.wav")
        signal = (rng.standard_normal(int(RATE * 60 * long_minutes)) * 3000).astype(np.int16)
        sf.write(path, signal, RATE, subtype="PCM_16")


def copy_tree(src, dst, jobs):
    """The baseline: read and write every file through soundfile, as integers."""
    paths = [os.path.relpath(os.path.join(d, f), src) for d, _, fs in os.walk(src) for f in fs]

    def one(rel):
        data, rate = sf.read(os.path.join(src, rel), dtype="int16", always_2d=True)
        out = os.path.join(dst, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        sf.write(out, data, rate, subtype="PCM_16")

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, paths))


def timed(fn, repeat=2):
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def tree_stats(root):
    files = seconds = 0
    for folder, _, names in os.walk(root):
        for name in names:
            files += 1
            seconds += sf.info(os.path.join(folder, name)).duration
    return files, seconds


def kernel_bench(taps_count):
    x = np.random.default_rng(1).standard_normal((RATE * 60, 1))
    taps = np.random.default_rng(2).uniform(0, 1, taps_count)
    filter_ranges(x[:1000], taps, [0], [1000])
    kernel = timed(lambda: filter_ranges(x, taps, [0], [len(x)]), 3)
    reference = timed(lambda: np.convolve(x[:, 0], taps, mode="same"), 3)
    return len(x) / kernel, len(x) / reference


def startup():
    exe = [sys.executable, "-m", "poscuda_cli"]
    help_time = timed(lambda: subprocess.run(exe + ["--help"], capture_output=True, check=True), 3)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        code = ("import time,numpy as np;t=time.perf_counter();from poscuda_cli.kernel import filter_ranges;"
                "filter_ranges(np.zeros((10,1)),np.ones(3),[0],[10]);print(time.perf_counter()-t)")
        cold = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True).stdout)
        warm = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True).stdout)
    return help_time, cold, warm


def peak_rss_mb(src, dst, preset):
    """Peak resident memory (MB) of a separate `poscuda protect` process."""
    key = os.path.join(os.path.dirname(dst), f"{preset}.json")
    subprocess.run([sys.executable, "-m", "poscuda_cli", "keygen", "-o", key, "--preset", preset, "--force"],
                   check=True, capture_output=True)
    code = ("import resource,subprocess,sys;subprocess.run(sys.argv[1:],check=True);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "poscuda_cli", "protect", src, dst,
                          "--key", key, "-q", "--jobs", "1"], check=True, capture_output=True, text=True)
    return int(out.stdout) / 1024


def long_file_rss(work, minutes_list, rate=48000, channels=2):
    """Peak RSS protecting one long file of each length: flat when block processing works."""
    rows = []
    for minutes in minutes_list:
        src = os.path.join(work, f"long{minutes:g}", "a")
        os.makedirs(src)
        frames = int(rate * 60 * minutes)
        with sf.SoundFile(os.path.join(src, "long.wav"), "w", rate, channels, "PCM_16") as handle:
            rng = np.random.default_rng(0)
            for start in range(0, frames, rate * 60):
                n = min(rate * 60, frames - start)
                handle.write((rng.standard_normal((n, channels)) * 3000).astype(np.int16))
        for preset in ("paper", "default"):
            if preset == "default" and minutes > 10:
                continue  # 1,537 taps at 48 kHz: minutes of CPU per hour of audio; memory is what is measured
            out = os.path.join(work, f"out-long{minutes:g}-{preset}")
            started = time.perf_counter()
            rss = peak_rss_mb(os.path.dirname(src), out, preset)
            rows.append((minutes, preset, rss, time.perf_counter() - started))
            shutil.rmtree(out)
        shutil.rmtree(os.path.dirname(src))
    return rows


def scaling(work, counts, lengths):
    """protect wall time (default key, jobs 2) against file count and against file length."""
    key = generate_key()
    rows = []
    for count, seconds in [(c, 1.5) for c in counts] + [(8, s) for s in lengths]:
        src = os.path.join(work, f"scale-{count}-{seconds:g}")
        rng = np.random.default_rng(1)
        for i in range(count):
            path = os.path.join(src, f"l{i % 4}", f"{i}.wav")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            sf.write(path, (rng.standard_normal(int(RATE * seconds)) * 3000).astype(np.int16), RATE,
                     subtype="PCM_16")
        out = os.path.join(work, "scale-out")
        t = timed(lambda: (shutil.rmtree(out, True), protect_tree(src, out, key, jobs=2)))
        rows.append((count, seconds, t))
        shutil.rmtree(src)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--long", type=int, default=3)
    parser.add_argument("--long-minutes", type=float, default=10)
    parser.add_argument("--rss-minutes", type=float, nargs="+", default=[2, 10, 60],
                        help="lengths (min) of the 48 kHz stereo files for the memory measurement")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results.md"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="poscuda-bench-")
    try:
        src = os.path.join(work, "in")
        build_tree(src, args.clips, args.long, args.long_minutes)
        files, seconds = tree_stats(src)
        rows = []
        for jobs in (1, 2):
            base = timed(lambda: (shutil.rmtree(os.path.join(work, "copy"), True),
                                  copy_tree(src, os.path.join(work, "copy"), jobs)))
            rows.append(("soundfile copy (baseline)", jobs, base, 1.0))
            for preset in ("default", "paper"):
                key = generate_key(PRESETS[preset])
                out = os.path.join(work, f"out-{preset}")

                def run():
                    shutil.rmtree(out, True)
                    protect_tree(src, out, key, jobs=jobs)

                t = timed(run)
                rows.append((f"protect, {preset} key", jobs, t, base / t))
        kernel_257, numpy_257 = kernel_bench(257)
        kernel_9, numpy_9 = kernel_bench(9)
        help_time, cold, warm = startup()
        rss_rows = long_file_rss(work, args.rss_minutes)
        scale_rows = scaling(work, (250, 500, 1000), (15, 30, 60))
    finally:
        shutil.rmtree(work, True)

    by = {(name, jobs): t for name, jobs, t, _ in rows}
    lines = [
        "# protect benchmark", "",
        f"{date.today()} · {platform.machine()} · {os.cpu_count()} cores · Python {platform.python_version()} · "
        f"`python bench/bench_protect.py --clips {args.clips} --long {args.long} --long-minutes {args.long_minutes:g}`", "",
        f"Tree: {files} files, {seconds / 3600:.2f} h of 16 kHz mono PCM_16 "
        f"({args.clips} clips of 1-2 s, {args.long} of {args.long_minutes:g} min).", "",
        "| run | jobs | wall s | files/s | audio s/s | throughput / baseline (same jobs) |",
        "|---|---|---|---|---|---|",
    ]
    for name, jobs, t, ratio in rows:
        lines.append(f"| {name} | {jobs} | {t:.2f} | {files / t:.0f} | {seconds / t:.0f} | {ratio:.2f} |")
    lines += [
        "",
        "| scaling | ratio |", "|---|---|",
        *[f"| {name}: jobs 2 / jobs 1 | {by[(name, 1)] / by[(name, 2)]:.2f} |"
          for name in ("soundfile copy (baseline)", "protect, default key", "protect, paper key")],
        "",
        "| kernel (60 s at 16 kHz, whole clip) | Msamples/s | numpy np.convolve Msamples/s | ratio |",
        "|---|---|---|---|",
        f"| 257 taps | {kernel_257 / 1e6:.1f} | {numpy_257 / 1e6:.1f} | {kernel_257 / numpy_257:.2f} |",
        f"| 9 taps | {kernel_9 / 1e6:.1f} | {numpy_9 / 1e6:.1f} | {kernel_9 / numpy_9:.2f} |",
        "",
        "| start-up | seconds |", "|---|---|",
        f"| `poscuda --help` | {help_time:.3f} |",
        f"| kernel import + first call, empty numba cache | {cold:.2f} |",
        f"| kernel import + first call, warm numba cache | {warm:.2f} |",
        "",
        "| one 48 kHz stereo PCM_16 file | key | peak RSS MB (whole process) | wall s |", "|---|---|---|---|",
        *[f"| {m:g} min | {p} | {rss:.0f} | {t:.1f} |" for m, p, rss, t in rss_rows],
        "",
        "| scaling (default key, jobs 2, 16 kHz) | wall s | s per audio hour |", "|---|---|---|",
        *[f"| {c} files × {sec:g} s | {t:.2f} | {t / (c * sec / 3600):.0f} |" for c, sec, t in scale_rows],
    ]
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
