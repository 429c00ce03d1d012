import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from poscuda_cli import audio, executors, ogg
from poscuda_cli.errors import ManifestError, UnsafePathError
from poscuda_cli.key import generate_key
from poscuda_cli.manifest import MANIFEST_NAME, OutputLock
from poscuda_cli.protect import protect_tree
from poscuda_cli.signature.transform import protect_clip

from conftest import MIXED_TREE, write_tree


def files_under(root):
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*")
                  if p.is_file() and not p.name.startswith("."))


def tree_bytes(root):
    return {rel: Path(root, rel).read_bytes() for rel in files_under(root)}


def test_mirrors_tree_and_keeps_format(mixed_tree, tmp_path, key):
    out = tmp_path / "out"
    summary = protect_tree(mixed_tree, out, key, jobs=2)
    assert summary.failed == [] and summary.protected == 5 and summary.copied == 2
    assert files_under(out) == files_under(mixed_tree)
    changed = samples = 0
    for rel, spec in MIXED_TREE.items():
        if isinstance(spec, bytes):
            assert (out / rel).read_bytes() == spec
            continue
        a, b = sf.info(str(mixed_tree / rel)), sf.info(str(out / rel))
        assert (a.format, a.subtype, a.samplerate, a.channels, a.frames) == \
               (b.format, b.subtype, b.samplerate, b.channels, b.frames)
        x, info = audio.read(str(mixed_tree / rel))
        y, _ = audio.read(str(out / rel))
        expected = protect_clip(x, key.label_plan(rel.split("/")[0]), info.samplerate, info.bits).audio
        assert x.dtype == y.dtype and not np.array_equal(x, y)
        np.testing.assert_array_equal(y, expected)  # the file holds exactly the in-memory transform's samples
        changed += np.count_nonzero(x != y)
        samples += x.size
    assert summary.samples == samples and summary.changed_fraction == pytest.approx(changed / samples, abs=1e-6)


def test_only_patches_change_with_paper_layout(mixed_tree, tmp_path, paper_key):
    out = tmp_path / "out"
    protect_tree(mixed_tree, out, paper_key, jobs=1)
    x, _ = audio.read(str(mixed_tree / "yes/a.wav"))
    y, _ = audio.read(str(out / "yes/a.wav"))
    changed = np.flatnonzero((x != y).any(axis=1))
    assert 0 < len(changed) < 0.8 * len(x)
    assert changed.max() < 0.3 * 8000 + 50 * 8 + 4  # inside frame_s plus one patch and the filter's reach


@pytest.mark.parametrize("streamed", [False, True])  # True: every file takes the block path, on the jobs' threads
def test_same_key_same_bytes_whatever_jobs(mixed_tree, tmp_path, key, streamed, monkeypatch):
    if streamed:
        monkeypatch.setattr("poscuda_cli.protect.STREAM_SAMPLES", 1000)
    protect_tree(mixed_tree, tmp_path / "one", key, jobs=1)
    protect_tree(mixed_tree, tmp_path / "four", key, jobs=4)
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "four")
    assert (tmp_path / "one" / MANIFEST_NAME).read_text() == (tmp_path / "four" / MANIFEST_NAME).read_text()
    protect_tree(mixed_tree, tmp_path / "other", generate_key(), jobs=1)
    assert tree_bytes(tmp_path / "other")["yes/a.wav"] != tree_bytes(tmp_path / "one")["yes/a.wav"]


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_worker_processes_give_the_same_bytes_and_report_bad_files(mixed_tree, tmp_path, key, start, monkeypatch):
    (mixed_tree / "no" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    threads = protect_tree(mixed_tree, tmp_path / "threads", key, jobs=1)
    monkeypatch.setattr(executors, "_start_method", lambda: start)
    processes = protect_tree(mixed_tree, tmp_path / "processes", key, jobs=2, processes=True)
    assert processes.to_dict()["errors"] == threads.to_dict()["errors"] != []
    assert processes.protected == threads.protected == 5
    assert tree_bytes(tmp_path / "threads") == tree_bytes(tmp_path / "processes")
    assert (tmp_path / "threads" / MANIFEST_NAME).read_text() == \
           (tmp_path / "processes" / MANIFEST_NAME).read_text()


def test_workers_are_forked_only_from_a_single_thread():
    code = "from poscuda_cli import executors; print(executors._start_method())"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == "fork"
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert executors._start_method() == "spawn"
    finally:
        release.set()
        other.join()


BLAS_PROBE = """
import os
import numpy  # loaded before the pool, as in most scripts: a spawned worker loads it again at start
from threadpoolctl import threadpool_info
from poscuda_cli import executors


def blas_threads():
    return sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})


if __name__ == "__main__":
    with executors.pool("local", jobs=2, processes=True) as workers:  # spawned: verify's workers
        theirs = workers.submit(blas_threads).result()
    print(theirs, blas_threads() != [1], "OPENBLAS_NUM_THREADS" in os.environ)
"""


def test_spawned_workers_start_with_one_blas_thread_each(tmp_path):
    """Two workers with a BLAS pool of every core each made verify 3.6x slower than one thread
    (bench_containers); this process keeps its own threads and environment."""
    pytest.importorskip("threadpoolctl", reason="counting BLAS threads needs threadpoolctl")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("with one core BLAS has one thread anyway")
    script = tmp_path / "probe.py"
    script.write_text(BLAS_PROBE)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                              "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[1]", "True", "False"]


def test_ogg_output_does_not_depend_on_the_clock(tmp_path, key):
    """libsndfile gives each Ogg stream a random serial number: written as drawn, two runs on the
    same Vorbis or Opus input would differ in it and in every page's checksum."""
    src = write_tree(tmp_path / "in", {"a/v.ogg": ("OGG", "VORBIS", 16000, 1, 0.5),
                                       "a/o.opus": ("OGG", "OPUS", 48000, 1, 0.5)})
    protect_tree(src, tmp_path / "one", key)
    protect_tree(src, tmp_path / "two", key)
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "two")
    for rel in ("a/v.ogg", "a/o.opus"):
        data = (tmp_path / "one" / rel).read_bytes()
        pages = list(ogg.pages(data))
        assert len(pages) >= 2 and pages[-1][1] == len(data)
        for start, end in pages:  # every page's checksum is right for its new serial
            page = data[start:start + 22] + b"\0\0\0\0" + data[start + 26:end]
            assert ogg.crc(page) == int.from_bytes(data[start + 22:start + 26], "little")
        assert sf.info(str(tmp_path / "one" / rel)).frames == sf.info(str(src / rel)).frames


def test_float_output_does_not_depend_on_the_clock(tmp_path, key):
    src = write_tree(tmp_path / "in", {"a/f.wav": ("WAV", "FLOAT", 8000, 1, 0.1)})
    protect_tree(src, tmp_path / "one", key)
    time.sleep(1.1)  # libsndfile's PEAK chunk would carry a timestamp in seconds
    protect_tree(src, tmp_path / "two", key)
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "two")


def test_manifest_has_fingerprint_not_secret(mixed_tree, tmp_path, key):
    protect_tree(mixed_tree, tmp_path / "out", key)
    text = (tmp_path / "out" / MANIFEST_NAME).read_text()
    header = json.loads(text.splitlines()[0])
    assert header["key_fingerprint"] == key.fingerprint and header["params"]["layout"] == key.params.layout
    assert key.secret.hex() not in text
    assert len(text.splitlines()) == 1 + 7


@pytest.mark.parametrize("arrangement", ["same", "out_inside", "in_inside"])
def test_refuses_overlapping_trees_before_writing(tmp_path, key, arrangement):
    src = write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.1)})
    before = tree_bytes(src)
    dst = {"same": src, "out_inside": src / "out", "in_inside": tmp_path}[arrangement]
    with pytest.raises(UnsafePathError):
        protect_tree(src, dst, key)
    assert tree_bytes(src) == before and not (src / "out").exists()


def test_refuses_missing_input_and_file_output(tmp_path, key):
    with pytest.raises(UnsafePathError, match="does not exist"):
        protect_tree(tmp_path / "nope", tmp_path / "out", key)
    (tmp_path / "file").write_text("x")
    (tmp_path / "in").mkdir()
    with pytest.raises(UnsafePathError, match="not a folder"):
        protect_tree(tmp_path / "in", tmp_path / "file", key)


def test_bad_files_are_reported_and_never_copied(tmp_path, key):
    src = write_tree(tmp_path / "in", {
        "a/good.wav": ("WAV", "PCM_16", 8000, 1, 0.2),
        "a/empty.wav": b"",
        "a/noise.wav": os.urandom(2000),
        "a/text.flac": b"this is not flac",
        "top.wav": ("WAV", "PCM_16", 8000, 1, 0.1),
        ".hidden/x.wav": ("WAV", "PCM_16", 8000, 1, 0.1),
        "a/.DS_Store": b"junk",
    })
    good = src / "a/good.wav"
    truncated = src / "a/truncated.wav"
    truncated.write_bytes(good.read_bytes()[:1000])
    out = tmp_path / "out"
    summary = protect_tree(src, out, key)
    failed = dict(summary.failed)
    assert set(failed) == {"a/empty.wav", "a/noise.wav", "a/text.flac", "a/truncated.wav", "top.wav"}
    assert "empty" in failed["a/empty.wav"] and "no label" in failed["top.wav"]
    assert files_under(out) == ["a/good.wav"]
    assert {p for p, _ in summary.skipped} == {".hidden", "a/.DS_Store"}
    assert not list(out.rglob("*" + audio.TEMP_SUFFIX))


def test_fail_fast_stops_early(tmp_path, key):
    files = {f"a/{i:03d}.wav": ("WAV", "PCM_16", 8000, 1, 0.1) for i in range(40)}
    src = write_tree(tmp_path / "in", {**files, "a/000.wav": b"garbage"})
    summary = protect_tree(src, tmp_path / "out", key, jobs=1, fail_fast=True)
    assert [p for p, _ in summary.failed] == ["a/000.wav"]
    assert summary.protected == 0 and files_under(tmp_path / "out") == []  # the first file stops it
    assert protect_tree(src, tmp_path / "all", key, jobs=1).protected == 39  # without: the rest is done


def test_resume_after_interruption(tmp_path, key, monkeypatch):
    files = {f"{lab}/{i}.wav": ("WAV", "PCM_16", 8000, 1, 0.2) for lab in "ab" for i in range(10)}
    src = write_tree(tmp_path / "in", files)
    protect_tree(src, tmp_path / "reference", key, jobs=1)
    # files land in the manifest a batch at a time; here each 3.2 kB file is its own batch
    monkeypatch.setattr(executors, "LOCAL_BATCH_BYTES", 3000)

    import poscuda_cli.protect as pipeline
    real, calls = pipeline.protect_clip, []

    def dies_after_seven(*args, **kwargs):
        calls.append(1)
        if len(calls) > 7:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "protect_clip", dies_after_seven)
    with pytest.raises(KeyboardInterrupt):
        protect_tree(src, tmp_path / "out", key, jobs=1)
    monkeypatch.setattr(pipeline, "protect_clip", real)
    assert 0 < len(files_under(tmp_path / "out")) < 20
    summary = protect_tree(src, tmp_path / "out", key, jobs=2)
    assert summary.resumed == 7 and summary.protected == 13
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "reference")
    assert not list((tmp_path / "out").rglob("*" + audio.TEMP_SUFFIX))


def test_changed_input_is_redone_on_rerun(tmp_path, key):
    src = write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.2)})
    protect_tree(src, tmp_path / "out", key)
    sf.write(src / "a/x.wav", np.zeros(800), 8000, subtype="PCM_16")
    summary = protect_tree(src, tmp_path / "out", key)
    assert summary.protected == 1 and summary.resumed == 0
    assert sf.info(str(tmp_path / "out/a/x.wav")).frames == 800


def test_other_key_refused_unless_forced(mixed_tree, tmp_path, key):
    protect_tree(mixed_tree, tmp_path / "out", key)
    other = generate_key()
    with pytest.raises(ManifestError, match=key.fingerprint):
        protect_tree(mixed_tree, tmp_path / "out", other)
    summary = protect_tree(mixed_tree, tmp_path / "out", other, force=True)
    assert summary.protected == 5 and summary.resumed == 0
    protect_tree(mixed_tree, tmp_path / "fresh", other)
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "fresh")


def test_second_run_on_same_out_refuses(mixed_tree, tmp_path, key):
    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(str(out)):
        result = []
        thread = threading.Thread(target=lambda: result.append(_try(mixed_tree, out, key)))
        thread.start()
        thread.join()
    assert isinstance(result[0], ManifestError) and "another poscuda run" in str(result[0])


def test_a_lock_let_go_within_moments_is_waited_for(tmp_path):
    """A rerun started as the killed run's last worker dies waits for it instead of refusing."""
    held = OutputLock(str(tmp_path))
    held.__enter__()
    timer = threading.Timer(0.3, held.__exit__)
    timer.start()
    started = time.monotonic()
    with OutputLock(str(tmp_path), wait=2.0):
        assert 0.25 < time.monotonic() - started < 1.5
    timer.join()
    with OutputLock(str(tmp_path)):
        with pytest.raises(ManifestError, match="still after 0.2 s"):
            OutputLock(str(tmp_path), wait=0.2).__enter__()


def _try(src, dst, key):
    try:
        return protect_tree(src, dst, key)
    except ManifestError as exc:
        return exc


def test_symlinked_file_followed_and_symlinked_folder_skipped(tmp_path, key):
    src = write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.2)})
    elsewhere = write_tree(tmp_path / "elsewhere", {"b/y.wav": ("WAV", "PCM_16", 8000, 1, 0.2)})
    os.symlink(elsewhere / "b/y.wav", src / "a/link.wav")
    os.symlink(elsewhere / "b", src / "linked-label")
    os.symlink("loop.wav", src / "a/loop.wav")
    summary = protect_tree(src, tmp_path / "out", key)
    assert not (tmp_path / "out/a/link.wav").is_symlink() and (tmp_path / "out/a/link.wav").is_file()
    assert ("linked-label", "symlinked folder (not followed)") in summary.skipped
    assert [p for p, _ in summary.failed] == ["a/loop.wav"]


def test_resume_across_versions_refused_unless_forced(tmp_path, key):
    import json

    from poscuda_cli.manifest import MANIFEST_NAME
    from poscuda_cli.errors import ManifestError

    src = write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.3)})
    protect_tree(src, tmp_path / "out", key)
    manifest = tmp_path / "out" / MANIFEST_NAME
    lines = manifest.read_text().splitlines()
    header = json.loads(lines[0])
    header["poscuda"] = "0.1.0"
    manifest.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    with pytest.raises(ManifestError, match="poscuda 0.1.0"):
        protect_tree(src, tmp_path / "out", key)
    assert protect_tree(src, tmp_path / "out", key, force=True).protected == 1  # redone, not resumed


def test_a_rerun_with_another_label_source_is_refused_unless_forced(tmp_path, key):
    src = write_tree(tmp_path / "in", {"a/1_x.wav": ("WAV", "PCM_16", 8000, 1, 0.3),
                                       "b/2_y.wav": ("WAV", "PCM_16", 8000, 1, 0.3)})
    from poscuda_cli.labels import PatternLabels

    protect_tree(src, tmp_path / "out", key)
    pattern = PatternLabels("^.*/([0-9])_")
    with pytest.raises(ManifestError, match=re.escape("label source (folders, --labels, --label-from) 'folders', "
                                                      "not 'pattern ^.*/([0-9])_'")):
        protect_tree(src, tmp_path / "out", key, labels=pattern)
    redone = protect_tree(src, tmp_path / "out", key, labels=pattern, force=True)
    assert redone.protected == 2 and redone.labels == {"1": 1, "2": 1}
