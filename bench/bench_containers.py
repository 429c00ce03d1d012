"""Speed of protect and verify on Parquet files and WebDataset shards against baselines in the
same process.

3,000 clips of 1 s at 16 kHz (half WAV PCM_16, half FLAC), in 4 Parquet files (row groups of 250),
in 4 tar shards, and as a tree of files. Baselines for protect: a pyarrow read + write of the same
Parquet files (every row group read and written again, same compression), and a tarfile read +
write of the same shards (every member read and added again). For verify: verify on the tree of
the same clips. And one Parquet file of all 3,000 clips (12 row groups) protected on a 2-worker
Dask cluster, where each row group is a task, against the same file protected locally with 2 jobs.
protect runs as the command line runs it (worker processes, processes=True). Best of --repeat
runs each; writes bench/results-containers.md.

    python bench/bench_containers.py [--repeat 2]
"""

import argparse
import io
import os
import platform
import shutil
import sys
import tarfile
import tempfile
import time
from datetime import date

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from poscuda_cli.containers import Options  # noqa: E402
from poscuda_cli.key import Key  # noqa: E402
from poscuda_cli.signature.params import STRENGTHS  # noqa: E402
from poscuda_cli.protect import protect_tree  # noqa: E402
from poscuda_cli.verify import verify_trees  # noqa: E402

CLIPS, FILES, RATE = 3000, 4, 16000


def clip(i):
    rng = np.random.default_rng(i)
    t = np.arange(RATE) / RATE
    x = sum(np.sin(2 * np.pi * k * rng.uniform(100, 200) * t) / k for k in range(1, 15)) * np.hanning(RATE) * 0.2
    buffer = io.BytesIO()
    sf.write(buffer, x, RATE, format="FLAC" if i % 2 else "WAV", subtype="PCM_16")
    return buffer.getvalue(), f"c{i}.{'flac' if i % 2 else 'wav'}", str(i % 10)


def parquet_file(path, cells):
    table = pa.table({"audio": [{"bytes": b, "path": p} for b, p, _ in cells], "label": [l for *_, l in cells]})
    pq.write_table(table, path, row_group_size=250)


def build(root):
    per = CLIPS // FILES
    for folder in ("parquet", "tar", "single"):
        os.makedirs(f"{root}/{folder}")
    parquet_file(f"{root}/single/all.parquet", [clip(i) for i in range(CLIPS)])
    for f in range(FILES):
        cells = [clip(f * per + i) for i in range(per)]
        parquet_file(f"{root}/parquet/part-{f}.parquet", cells)
        for data, path, label in cells:
            os.makedirs(f"{root}/tree/{label}", exist_ok=True)
            with open(f"{root}/tree/{label}/{path}", "wb") as handle:
                handle.write(data)
        with tarfile.open(f"{root}/tar/shard-{f}.tar", "w") as shard:
            for data, path, label in cells:
                for name, payload in ((path, data), (path.split(".")[0] + ".cls", label.encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    shard.addfile(info, io.BytesIO(payload))


def reencode(data):
    """An audio file's bytes decoded and encoded again by soundfile, as a plain copy of a tree does."""
    samples, rate = sf.read(io.BytesIO(data), dtype="int16")
    info = sf.info(io.BytesIO(data))
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=info.format, subtype=info.subtype)
    return buffer.getvalue()


def pyarrow_copy(src, dst, change=None):
    """Every row group of every file read and written again; with ``change``, through it each audio cell."""
    os.makedirs(dst)
    for name in sorted(os.listdir(src)):
        source = pq.ParquetFile(f"{src}/{name}")
        with pq.ParquetWriter(f"{dst}/{name}", source.schema_arrow, compression="snappy") as writer:
            for i in range(source.metadata.num_row_groups):
                table = source.read_row_group(i)
                if change:
                    cells = table.column("audio").combine_chunks()
                    data = pa.array([change(b) for b in cells.field("bytes").to_pylist()], pa.binary())
                    table = table.set_column(0, "audio", pa.StructArray.from_arrays([data, cells.field("path")],
                                                                                    ["bytes", "path"]))
                writer.write_table(table)


def tar_copy(src, dst):
    os.makedirs(dst)
    for name in sorted(os.listdir(src)):
        with tarfile.open(f"{src}/{name}", "r|") as shard, tarfile.open(f"{dst}/{name}", "w") as out:
            for member in shard:
                out.addfile(member, io.BytesIO(shard.extractfile(member).read()))


def best(fn, dst, repeat):
    times = []
    for _ in range(repeat):
        shutil.rmtree(dst, ignore_errors=True)
        os.sync()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    shutil.rmtree(dst, ignore_errors=True)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(HERE, "results-containers.md"))
    args = parser.parse_args()
    key = Key(b"bench".ljust(32, b"\0"), STRENGTHS["balanced"])
    work = tempfile.mkdtemp(prefix="poscuda-bench-")
    try:
        build(work)
        rows = []
        for fmt, folder, copies in (
                ("parquet", "parquet", ((pyarrow_copy, "pyarrow read + write"),
                                        (lambda s, d: pyarrow_copy(s, d, reencode),
                                         "the same, each cell decoded and encoded by soundfile"))),
                ("webdataset", "tar", ((tar_copy, "tarfile read + write"),))):
            for jobs in (1, 2):
                took = best(lambda: protect_tree(f"{work}/{folder}", f"{work}/out", key, jobs=jobs, processes=True,
                                                 containers=Options(fmt)), f"{work}/out", args.repeat)
                for copy, baseline in copies:
                    base = best(lambda: copy(f"{work}/{folder}", f"{work}/copy"), f"{work}/copy", args.repeat)
                    rows.append((f"protect {fmt}", jobs, took, baseline, base))
                    print(fmt, jobs, f"{took:.2f} s against {base:.2f} s ({baseline})", flush=True)
        for fmt, folder in (("tree", "tree"), ("parquet", "parquet"), ("webdataset", "tar")):
            protect_tree(f"{work}/{folder}", f"{work}/{folder}-out", key,
                         containers=None if fmt == "tree" else Options(fmt))
        for jobs in (1, 2):
            def verify(fmt, folder):
                return lambda: verify_trees(f"{work}/{folder}", f"{work}/{folder}-out", jobs=jobs, processes=True,
                                            containers=None if fmt == "tree" else Options(fmt))
            base = best(verify("tree", "tree"), f"{work}/none", args.repeat)
            for fmt, folder in (("parquet", "parquet"), ("webdataset", "tar")):
                took = best(verify(fmt, folder), f"{work}/none", args.repeat)
                rows.append((f"verify {fmt}", jobs, took, "verify on the same clips as a tree", base))
                print("verify", fmt, jobs, f"{took:.2f} s against {base:.2f} s", flush=True)
        one = f"{work}/single/all.parquet"
        base = best(lambda: protect_tree(one, f"{work}/out", key, jobs=2, processes=True,
                                         containers=Options("parquet")), f"{work}/out", args.repeat)
        took = best(lambda: protect_tree(one, f"{work}/out", key, jobs=2, containers=Options("parquet"),
                                         executor="dask"), f"{work}/out", args.repeat)
        rows.append(("protect 1 parquet file, --executor dask", 2, took, "the same file, local", base))
        print("dask", f"{took:.2f} s against {base:.2f} s", flush=True)
    finally:
        shutil.rmtree(work)
    lines = [f"# protect on containers ({date.today()}, {platform.machine()}, {os.cpu_count()} cores)", "",
             f"{CLIPS} clips of 1 s at 16 kHz (half WAV, half FLAC) in {FILES} files (or one, for the Dask row: "
             f"12 row groups, 12 tasks); `balanced`; verify without perceptual metrics; best of {args.repeat}. "
             "`python bench/bench_containers.py`.", "",
             "| run | --jobs | time | baseline | baseline time | time / baseline |", "|---|---|---|---|---|---|"]
    lines += [f"| {run} | {jobs} | {took:.2f} s | {name} | {base:.2f} s | {took / base:.2f}x |"
              for run, jobs, took, name, base in rows]
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
