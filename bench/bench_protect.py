"""Speed of protect and verify against baselines run in the same process (issue: speed).

Every ratio compares two timings taken here, one after the other (best of --repeat runs each):
* protect (each strength level and the paper's preset) against a plain soundfile read + write
  copy of the same tree (the issue's baseline; soundfile fsyncs each file it closes) and
  against a byte copy (shutil.copyfile: no decoding and, like protect, no fsync), at
  --jobs 1 and 2, on FSDD, on 3,000 clips of 2 s at 16 kHz and on 200 clips of 10 s of 48 kHz
  stereo (PCM_16; in the last the work is the filter more than the file system);
* the per-channel filter (kernel.filter_ranges) against numpy's np.convolve and scipy's
  oaconvolve, at the balanced level's filter length, 16 and 48 kHz;
* one long 48 kHz stereo file: protect against a block-wise soundfile copy, and peak memory;
* a 2-worker Dask LocalCluster against local --jobs 2 on FSDD;
* verify on FSDD: MFCC FAD without a cache, with PESQ and STOI, and the HTML report.
Writes bench/results.md.

    python bench/bench_protect.py [--long-minutes 10 60] [--repeat 2]
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from poscuda_cli.signature import filters, kernel  # noqa: E402
from poscuda_cli.signature.kernel import filter_ranges  # noqa: E402
from poscuda_cli.key import Key, write_key  # noqa: E402
from poscuda_cli.signature.params import PRESETS, STRENGTHS  # noqa: E402
from poscuda_cli.protect import protect_tree  # noqa: E402
from poscuda_cli.verify import Plan, verify_trees  # noqa: E402

FSDD = os.path.join(HERE, "../../shared/data/fsdd")
CONFIGS = {**{f"--strength {k}": v for k, v in STRENGTHS.items()}, "--preset paper": PRESETS["paper"]}
THREADS_RUN = "protect --strength balanced"  # also run in threads at --jobs 2


def key_for(params, name="bench"):
    return Key(name.encode().ljust(32, b"\0")[:32], params)


def timed(fn, repeat, setup=None):
    """Best wall time of ``repeat`` runs of ``fn``, each after an untimed ``setup`` and begun with no
    writes of earlier runs pending (on this VM's disk, writeback of the last run's 3,000 files
    otherwise lands in the next one's time)."""
    best = float("inf")
    for _ in range(repeat):
        if setup:
            setup()
        os.sync()
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def synthetic_tree(root, clips=3000, seconds=2.0, rate=16000, channels=1):
    rng = np.random.default_rng(0)
    for i in range(clips):
        path = os.path.join(root, f"label{i % 10}", f"clip{i:05d}.wav")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        noise = rng.standard_normal((int(rate * seconds), channels)) * 3000
        sf.write(path, noise.astype(np.int16), rate, subtype="PCM_16")
    return root


def soundfile_copy(src, dst):
    """The issue's baseline for one file: read and write it through soundfile, as integers."""
    data, rate = sf.read(src, dtype="int16", always_2d=True)
    sf.write(dst, data, rate, subtype="PCM_16")


def copy_tree(src, dst, jobs, copy_file):
    """Every audio file of ``src`` through ``copy_file(in, out)`` in ``jobs`` threads."""
    paths = [os.path.relpath(os.path.join(d, f), src) for d, _, fs in os.walk(src) for f in fs if f.endswith(".wav")]

    def one(rel):
        out = os.path.join(dst, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        copy_file(os.path.join(src, rel), out)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, paths))


BASELINES = {"soundfile copy (baseline)": soundfile_copy, "byte copy (shutil.copyfile)": shutil.copyfile}


def tree_throughput(name, src, work, repeat):
    """(tree, run, jobs, seconds, throughput / soundfile copy, throughput / byte copy) rows."""
    rows = []
    for jobs in (1, 2):
        copy_dst = os.path.join(work, "copy")
        base = {run: timed(lambda: copy_tree(src, copy_dst, jobs, copy_file), repeat,
                           lambda: shutil.rmtree(copy_dst, True))
                for run, copy_file in BASELINES.items()}
        sound, byte = base.values()
        rows += [(name, run, jobs, t, sound / t, byte / t) for run, t in base.items()]
        out = os.path.join(work, "out")
        for config, params in CONFIGS.items():  # as the command line runs (worker processes for small files)
            key = key_for(params)
            t = timed(lambda: protect_tree(src, out, key, jobs=jobs, processes=True), repeat,
                      lambda: shutil.rmtree(out, True))
            rows.append((name, f"protect {config}", jobs, t, sound / t, byte / t))
        if jobs > 1:  # what worker processes gain over the threads the API uses by default
            key = key_for(STRENGTHS["balanced"])
            t = timed(lambda: protect_tree(src, out, key, jobs=jobs), repeat, lambda: shutil.rmtree(out, True))
            rows.append((name, f"{THREADS_RUN}, threads", jobs, t, sound / t, byte / t))
    shutil.rmtree(os.path.join(work, "copy"), True)
    shutil.rmtree(os.path.join(work, "out"), True)
    return rows


def kernel_rows(repeat):
    """filter_ranges against np.convolve and scipy's oaconvolve, with the balanced level's taps."""
    from scipy.signal import oaconvolve

    rows = []
    for rate in (16000, 48000):
        taps = filters.design(key_for(STRENGTHS["balanced"]).label_plan("a").filter, rate)
        x = np.random.default_rng(1).standard_normal((rate * 60, 1))
        filter_ranges(x[:rate], taps, [0], [rate])
        ours = timed(lambda: filter_ranges(x, taps, [0], [len(x)]), repeat)
        numpy = timed(lambda: np.convolve(x[:, 0], taps, mode="same"), repeat)
        scipy = timed(lambda: oaconvolve(x[:, 0], taps, mode="same"), repeat)
        rows.append((rate, len(taps), len(x) / ours, len(x) / numpy, len(x) / scipy, fft_ceiling(len(taps), repeat)))
    return rows


def fft_ceiling(ntaps, repeat):
    """Outputs per second of the FFT round trips alone, at the kernel's block size for ``ntaps``
    (no multiply, no copies): what the FFT path could reach at best."""
    from scipy import fft

    block = kernel.grid(ntaps, 1 << 30)
    size = fft.next_fast_len(block + ntaps - 1, real=True)
    segment = np.random.default_rng(2).standard_normal((size, 1))
    rounds = 50
    seconds = timed(lambda: [fft.irfft(fft.rfft(segment, axis=0), size, axis=0) for _ in range(rounds)], repeat)
    return rounds * block / seconds


def long_file_rows(work, minutes_list):
    """One 48 kHz stereo PCM_16 file: block-wise copy against protect (balanced), and peak RSS."""
    rows = []
    key_path = os.path.join(work, "balanced.json")
    write_key(key_for(STRENGTHS["balanced"]), key_path, force=True)
    for minutes in minutes_list:
        src = os.path.join(work, f"long{minutes:g}")
        path = os.path.join(src, "a", "long.wav")
        os.makedirs(os.path.dirname(path))
        rate, frames = 48000, int(48000 * 60 * minutes)
        rng = np.random.default_rng(0)
        with sf.SoundFile(path, "w", rate, 2, "PCM_16") as handle:
            for start in range(0, frames, rate * 60):
                handle.write((rng.standard_normal((min(rate * 60, frames - start), 2)) * 3000).astype(np.int16))
        copy = os.path.join(work, "copy.wav")

        def block_copy():
            with sf.SoundFile(path) as reader, sf.SoundFile(copy, "w", rate, 2, "PCM_16") as writer:
                for block in reader.blocks(blocksize=rate * 20, dtype="int16", always_2d=True):
                    writer.write(block)

        base = timed(block_copy, 1)
        os.unlink(copy)
        out = os.path.join(work, "long-out")
        code = ("import resource,subprocess,sys,time;t=time.perf_counter();subprocess.run(sys.argv[1:],check=True);"
                "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        for jobs in (1, 2):
            result = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "poscuda_cli", "protect", src,
                                     out, "--key", key_path, "-q", "--jobs", str(jobs)],
                                    check=True, capture_output=True, text=True)
            wall, rss = result.stdout.split()
            rows.append((minutes, jobs, base, float(wall), int(rss) / 1024))
            shutil.rmtree(out)
        shutil.rmtree(src)
    return rows


def dask_rows(src, work, repeat):
    """Seconds for local --jobs 2, a 2-worker LocalCluster started by protect, and one already running."""
    import logging

    from distributed import LocalCluster

    key, out = key_for(STRENGTHS["balanced"]), os.path.join(work, "dask-out")

    def run(**options):
        return timed(lambda: protect_tree(src, out, key, jobs=2, **options), repeat, lambda: shutil.rmtree(out, True))

    local, started = run(processes=True), run(executor="dask")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster:
        running = run(executor="dask", scheduler=cluster.scheduler_address)
    shutil.rmtree(out, True)
    return local, started, running


def verify_rows(src, work):
    """verify on FSDD against its balanced protection: seconds for each plan, and the report."""
    protected = os.path.join(work, "verify-prot")
    protect_tree(src, protected, key_for(STRENGTHS["balanced"]), jobs=2)
    rows = []
    for name, plan in (("MFCC FAD, SNR, LSD (no cache)", Plan()),
                       ("+ PESQ and STOI", Plan(("pesq", "stoi"))),
                       ("+ PESQ, STOI and speaker similarity", Plan(("pesq", "stoi", "speaker")))):
        started = time.perf_counter()
        report = verify_trees(src, protected, plan, jobs=2, processes=True)
        rows.append((name, time.perf_counter() - started))
    from poscuda_cli.verify.report import write_report

    started = time.perf_counter()
    write_report(report, src, protected, os.path.join(work, "report.html"))
    rows.append(("the HTML report, after the above", time.perf_counter() - started))
    shutil.rmtree(protected)
    return rows


def startup():
    exe = [sys.executable, "-m", "poscuda_cli"]
    help_time = timed(lambda: subprocess.run(exe + ["--help"], capture_output=True, check=True), 3)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        code = ("import time,numpy as np;t=time.perf_counter();from poscuda_cli.signature.kernel import filter_ranges;"
                "filter_ranges(np.zeros((10,1)),np.ones(3),[0],[10]);print(time.perf_counter()-t)")
        cold, warm = (float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                           check=True).stdout) for _ in range(2))
    return help_time, cold, warm


def verdict(value, target, higher=True):
    met = value >= target if higher else value <= target
    return f"{'met' if met else '**missed**'} ({value:.2f} {'≥' if higher else '≤'} {target:g})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-minutes", type=float, nargs="+", default=[10, 60])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="poscuda-bench-")
    try:
        trees = tree_throughput("FSDD", FSDD, work, args.repeat)
        for name, shape in (("3,000 × 2 s, 16 kHz", {}),
                            ("200 × 10 s, 48 kHz stereo", dict(clips=200, seconds=10.0, rate=48000, channels=2))):
            synthetic = synthetic_tree(os.path.join(work, "synthetic"), **shape)
            trees += tree_throughput(name, synthetic, work, args.repeat)
            shutil.rmtree(synthetic)
        kernels = kernel_rows(args.repeat)
        longs = long_file_rows(work, args.long_minutes)
        dasks = dask_rows(FSDD, work, args.repeat)
        verifies = verify_rows(FSDD, work)
        help_time, cold, warm = startup()
    finally:
        shutil.rmtree(work, True)
    write(args, trees, kernels, longs, dasks, verifies, help_time, cold, warm)


def write(args, trees, kernels, longs, dasks, verifies, help_time, cold, warm):
    local, started, running = dasks
    by = {(tree, name, jobs): t for tree, name, jobs, t, _, _ in trees}
    lines = ["# Speed", "",
             f"{date.today()} · {platform.machine()} · {os.cpu_count()} cores · Python {platform.python_version()} · "
             f"`python bench/bench_protect.py --long-minutes {' '.join(f'{m:g}' for m in args.long_minutes)}` "
             f"(`make bench`); best of {args.repeat} runs, baselines run in the same process; each run "
             "starts after an untimed removal of the last run's output and a `sync`.", "",
             "## protect against a soundfile read + write copy of the same tree", "",
             "The issue's baseline is a soundfile read + write copy; soundfile fsyncs every file it closes "
             "and protect does not (as cp and rsync do not), so the byte copy (no decoding, no fsync) is "
             "shown too: the cost of a copy without the fsync.", "",
             "| tree | run | jobs | wall s | throughput / soundfile copy | target ≥ 0.8 | throughput / byte copy |",
             "|---|---|---|---|---|---|---|"]
    for tree, name, jobs, t, ratio, byte_ratio in trees:
        target = verdict(ratio, 0.8) if name.startswith("protect") else ""
        lines.append(f"| {tree} | {name} | {jobs} | {t:.2f} | {ratio:.2f} | {target} | {byte_ratio:.2f} |")
    lines += ["", "| tree | run | jobs 2 / jobs 1 speed-up | target ≥ 1.8 |", "|---|---|---|---|"]
    for tree, name in dict.fromkeys((t, n) for t, n, *_ in trees):
        one = by[(tree, THREADS_RUN if name.endswith(", threads") else name, 1)]  # one job: one thread either way
        gain = one / by[(tree, name, 2)]
        lines.append(f"| {tree} | {name} | {gain:.2f} | {verdict(gain, 1.8) if name.startswith('protect') else ''} |")
    lines += ["", "## The filter (60 s of one channel, balanced level's taps)", "",
              "| rate | taps | filter_ranges Msamples/s | × np.convolve (target ≥ 10) | × scipy oaconvolve (target ≥ 1) "
              "| FFT round trips alone: Msamples/s, × np.convolve |",
              "|---|---|---|---|---|---|"]
    for rate, taps, ours, numpy, scipy, ceiling in kernels:
        lines.append(f"| {rate} | {taps} | {ours / 1e6:.1f} | {verdict(ours / numpy, 10)} | {verdict(ours / scipy, 1)} "
                     f"| {ceiling / 1e6:.0f}, {ceiling / numpy:.1f} |")
    lines += ["", "The last column is the float64 FFTs of the kernel's blocks and nothing else: no FFT filter of "
              "this length can beat it on one core, so where it is below 10 × np.convolve the target needs a "
              "different filter (shorter, or recursive), not a faster kernel."]
    lines += ["", "## One long 48 kHz stereo file (balanced level; its blocks are filtered on --jobs threads)", "",
              "| length | jobs | block copy s | protect s | protect / copy time (target ≤ 2) | peak RSS MB |",
              "|---|---|---|---|---|---|"]
    for minutes, jobs, base, wall, rss in longs:
        lines.append(f"| {minutes:g} min | {jobs} | {base:.1f} | {wall:.1f} | {verdict(wall / base, 2, higher=False)} "
                     f"| {rss:.0f} |")
    minutes, _, base, _, _ = longs[-1]
    copy_rate = 48000 * 60 * minutes * 2 / base / 1e6
    filter_rate = kernels[-1][2] / 1e6
    lines += ["", f"The block copy moves {copy_rate:.0f} Msamples/s (the page cache at memory speed); the filter "
              f"alone, at 48 kHz, runs at {filter_rate:.0f} Msamples/s per core, so ≤ 2× the copy would need a "
              f"filter {copy_rate / 2 / filter_rate:.1f}× faster than this one (protect's time also includes "
              "starting Python, which the in-process copy does not)."]
    lines += ["", "## Dask", "",
              f"FSDD, balanced level: local --jobs 2 (worker processes) {local:.2f} s; a 2-worker LocalCluster that protect starts "
              f"{started:.2f} s, throughput / local {verdict(local / started, 0.8)} (start-up included); the same "
              f"cluster already running (`--scheduler ADDRESS`, as on a shared cluster) {running:.2f} s, "
              f"throughput / local {verdict(local / running, 0.8)}.", "",
              "## verify on FSDD (3,000 pairs, balanced level, --jobs 2, worker processes)", "",
              "| measuring | wall s | target |", "|---|---|---|"]
    targets = {0: ("≤ 8", 8), 1: ("< 60", 60), 3: ("< 20", 20)}
    for i, (name, seconds) in enumerate(verifies):
        text, limit = targets.get(i, ("", None))
        lines.append(f"| {name} | {seconds:.1f} | {verdict(seconds, limit, higher=False) if limit else ''} |")
    lines += ["", "## Start-up", "", "| | seconds |", "|---|---|",
              f"| `poscuda --help` | {help_time:.3f} |",
              f"| kernel import + first call, empty numba cache | {cold:.2f} |",
              f"| kernel import + first call, warm numba cache | {warm:.2f} |"]
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
