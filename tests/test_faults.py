"""Fault suite: bad input, interruptions, failing disks, keys and paths -- nothing lost, nothing leaked."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from poscuda_cli import audio
from poscuda_cli.signature import layout
from poscuda_cli.errors import ManifestError, PoscudaError
from poscuda_cli.signature import filters
from poscuda_cli.key import Key, write_key
from poscuda_cli.manifest import MANIFEST_NAME
from poscuda_cli.signature.params import Params
from poscuda_cli.protect import protect_tree
from poscuda_cli.signature.transform import protect_clip

from conftest import speechlike, write_tree
from test_kernel import reference
from test_protect import files_under, tree_bytes


def test_bad_inputs_each_reported_others_done(tmp_path, key):
    good = {"a/good.wav": ("WAV", "PCM_16", 8000, 1, 0.2)}
    src = write_tree(tmp_path / "in", {
        **good,
        "a/pcm24.wav": ("WAV", "PCM_24", 8000, 1, 0.2), "a/pcm32.wav": ("WAV", "PCM_32", 8000, 1, 0.2),
        "a/float.wav": ("WAV", "FLOAT", 8000, 1, 0.2), "a/double.wav": ("WAV", "DOUBLE", 8000, 1, 0.2),
        "a/eight.wav": ("WAV", "PCM_16", 8000, 8, 0.2), "a/tiny.wav": ("WAV", "PCM_16", 8000, 1, 0.001),
        "a/empty.wav": b"", "a/random.wav": os.urandom(3000), "a/text.flac": b"not flac at all",
        "emoji 🎧 label/with space ü.wav": ("WAV", "PCM_16", 8000, 1, 0.2),
        "a/" + "x" * 240 + ".wav": ("WAV", "PCM_16", 8000, 1, 0.2),
    })
    (src / "a/header-only.wav").write_bytes((src / "a/good.wav").read_bytes()[:20])
    sf.write(src / "a/zero-frames.wav", np.zeros((0, 1)), 8000, subtype="PCM_16")
    nan = speechlike(0.2).astype(np.float32)
    nan[100] = np.nan
    sf.write(src / "a/nan.wav", nan, 8000, subtype="FLOAT")
    inf = speechlike(0.2)
    inf[5] = np.inf
    sf.write(src / "a/inf.wav", inf, 8000, subtype="DOUBLE")
    out = tmp_path / "out"
    summary = protect_tree(src, out, key)
    failed = dict(summary.failed)
    assert set(failed) == {"a/empty.wav", "a/random.wav", "a/text.flac", "a/header-only.wav", "a/nan.wav",
                           "a/inf.wav"}
    assert "NaN or Inf" in failed["a/nan.wav"] and "empty" in failed["a/empty.wav"]
    assert all(reason for reason in failed.values())
    assert set(files_under(out)) == set(files_under(src)) - set(failed)
    for rel in files_under(out):
        a, b = sf.info(str(src / rel)), sf.info(str(out / rel))
        assert (a.subtype, a.channels, a.frames, a.samplerate) == (b.subtype, b.channels, b.frames, b.samplerate)
    assert not list(out.rglob("*" + audio.TEMP_SUFFIX))


def test_unreadable_file_is_reported(tmp_path, key, monkeypatch):
    src = write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.1),
                                       "a/y.wav": ("WAV", "PCM_16", 8000, 1, 0.1)})
    real_init = sf.SoundFile.__init__

    def denied(self, file, mode="r", *args, **kwargs):  # root ignores chmod, so simulate EACCES
        if mode == "r" and os.fsdecode(file).endswith("y.wav"):
            raise PermissionError(13, "Permission denied")
        return real_init(self, file, mode, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "__init__", denied)
    summary = protect_tree(src, tmp_path / "out", key)
    assert summary.failed == [("a/y.wav", "cannot decode audio (Permission denied)")]
    assert files_under(tmp_path / "out") == ["a/x.wav"]


def test_unreadable_file_and_folder_for_real(tmp_path, key):
    """chmod 0 for real. Root (as CI runs) reads any file, so there a forked child that has become the
    user nobody runs protect; everything protect imports is loaded before, as the child cannot read
    root's Python installation."""
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(base, 0o777)
        src = write_tree(base / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.1),
                                       "a/y.wav": ("WAV", "PCM_16", 8000, 1, 0.1),
                                       "b/z.wav": ("WAV", "PCM_16", 8000, 1, 0.1)})
        os.chmod(src / "a/y.wav", 0)
        os.chmod(src / "b", 0)
        if os.geteuid() != 0:
            failed = protect_tree(src, base / "out", key).failed
        else:
            protect_tree(src, tmp_path / "warm-up", key)
            failed = json.loads(_as_nobody(lambda: json.dumps(protect_tree(src, base / "out", key).failed)))
        assert sorted(tuple(f) for f in failed) == [("a/y.wav", "cannot decode audio (Permission denied)"),
                                                     ("b", "cannot read folder (Permission denied)")]
        assert files_under(base / "out") == ["a/x.wav"]
    finally:
        os.chmod(src / "b", 0o755)
        shutil.rmtree(base)


def _as_nobody(work):
    """``work()``'s string, computed in a forked child running as the user nobody."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, work().encode())
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001 -- reported by the parent
            os.write(write, f"ERROR {exc!r}".encode())
            os._exit(1)
    os.close(write)
    with os.fdopen(read) as handle:
        text = handle.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text
    return text


def proc_state(stat):
    """(state, parent pid) from a Linux /proc/<pid>/stat file, or None once the process is gone."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()  # the command name, in brackets, may hold spaces
    except OSError:
        return None
    return fields[0], int(fields[1])


def children_of(pid):
    """Process ids whose parent is ``pid``."""
    return [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat")
            if (proc_state(stat) or (None, None))[1] == pid]


def wait_until_gone(pids, seconds=10):
    def running(pid):  # a zombie (state Z) has exited; its new parent reaps it
        state = proc_state(Path(f"/proc/{pid}/stat"))
        return state is not None and state[0] != "Z"

    deadline = time.time() + seconds
    while any(map(running, pids)):
        if time.time() > deadline:
            return False
        time.sleep(0.1)
    return True


def descendants_of(pid):
    """Every living process below ``pid``: its workers, and theirs."""
    found, frontier = [], [pid]
    while frontier:
        children = [c for parent in frontier for c in children_of(parent)]
        found += children
        frontier = children
    return found


# Runs the CLI from a process with a second thread, where protect spawns its workers instead of forking.
SPAWNING = ("import sys, threading; threading.Thread(target=threading.Event().wait, daemon=True).start(); "
            "from poscuda_cli.cli import main; sys.argv[0] = 'poscuda'; main()")


def kill_when(command, ready, timeout=60):
    """Start ``command``, SIGKILL it once ``ready(its pid)`` holds; returns the pids of what it had started."""
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and victim.poll() is None and not ready(victim.pid):
        time.sleep(0.01)
    workers = descendants_of(victim.pid)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    return workers


def still_running(pids):
    return [pid for pid in pids if (proc_state(Path(f"/proc/{pid}/stat")) or ("Z",))[0] != "Z"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes through Linux's /proc")
@pytest.mark.parametrize("start", ["fork", "spawn", "dask"])
def test_kill_dash_nine_then_immediate_rerun_is_identical(tmp_path, start):
    if start == "dask":
        pytest.importorskip("distributed", reason="the dask executor needs the [dask] extra")
    files = {f"{lab}/{i:03d}.wav": ("WAV", "PCM_16", 16000, 1, 1.0) for lab in "abcd" for i in range(150)}
    src = write_tree(tmp_path / "in", files)
    key_path = tmp_path / "k.json"
    write_key(Key(bytes(range(32)), Params()), key_path)
    python = [sys.executable, "-c", SPAWNING] if start == "spawn" else [sys.executable, "-m", "poscuda_cli"]
    executor = ["--executor", "dask"] if start == "dask" else []  # a local cluster of two worker processes

    def command(out):
        return python + ["protect", str(src), str(out), "--key", str(key_path), "--jobs", "2", "-q"] + executor

    subprocess.run(command(tmp_path / "reference"), check=True)
    manifest = tmp_path / "out" / MANIFEST_NAME
    workers = kill_when(command(tmp_path / "out"),
                        lambda _: manifest.exists() and len(manifest.read_text().splitlines()) > 30)
    assert len(workers) >= 2, "the run should have started its worker processes"
    done_before = len(files_under(tmp_path / "out"))
    assert 0 < done_before < len(files), "the run should have been killed half-way"
    rerun = subprocess.run(command(tmp_path / "out"), capture_output=True, text=True)  # at once: no waiting
    assert rerun.returncode == 0, rerun.stderr
    assert not still_running(workers), "worker processes outlived the killed run"
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "reference")
    assert not list((tmp_path / "out").rglob("*" + audio.TEMP_SUFFIX))
    assert (tmp_path / "out" / MANIFEST_NAME).read_text() == (tmp_path / "reference" / MANIFEST_NAME).read_text()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes through Linux's /proc")
def test_workers_stop_writing_the_moment_their_run_is_killed(tmp_path):
    files = {f"a/{i:03d}.wav": ("WAV", "PCM_16", 16000, 1, 1.0) for i in range(400)}
    src = write_tree(tmp_path / "in", files)
    key_path = tmp_path / "k.json"
    write_key(Key(bytes(range(32)), Params()), key_path)
    out = tmp_path / "out"
    manifest = out / MANIFEST_NAME
    workers = kill_when([sys.executable, "-m", "poscuda_cli", "protect", str(src), str(out), "--key", str(key_path),
                         "--jobs", "2", "-q"], lambda _: manifest.exists() and len(manifest.read_text().splitlines()) > 30)
    written = set(files_under(out))
    assert wait_until_gone(workers, seconds=0.1), "the workers should die with their run, not half a second later"
    time.sleep(0.3)
    assert set(files_under(out)) == written, "files were renamed into OUT after the run that owned it was killed"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes through Linux's /proc")
def test_kill_dash_nine_of_verify_leaves_no_worker(tmp_path):
    pytest.importorskip("pystoi", reason="STOI (poscuda[quality]) keeps verify's workers busy long enough")
    files = {f"{lab}/{i:03d}.wav": ("WAV", "PCM_16", 16000, 1, 1.0) for lab in "ab" for i in range(200)}
    src = write_tree(tmp_path / "in", files)
    command = [sys.executable, "-m", "poscuda_cli", "verify", str(src), str(src), "--jobs", "2", "--cache", "none",
               "--perceptual", "stoi"]
    seen = []

    def working(pid):  # two workers and a resource tracker, started a second ago: past their start-up
        if len(descendants_of(pid)) >= 3:
            seen.append(time.time())
        return bool(seen) and time.time() - seen[0] > 1.0

    workers = kill_when(command, working)
    assert len(workers) >= 2, "verify should have started its worker processes"
    assert wait_until_gone(workers, seconds=0.1), "verify's workers outlived the killed run"


def test_disk_full_leaves_no_corrupt_file_and_resumes(tmp_path, key, monkeypatch):
    files = {f"a/{i}.wav": ("WAV", "PCM_16", 8000, 1, 0.2) for i in range(6)}
    src = write_tree(tmp_path / "in", files)
    real_write, calls = sf.SoundFile.write, []

    def full_on_third(self, data):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", full_on_third)
    summary = protect_tree(src, tmp_path / "out", key, jobs=1)
    assert [reason for _, reason in summary.failed] == ["cannot write audio (No space left on device)"]
    assert len(files_under(tmp_path / "out")) == 5
    assert not list((tmp_path / "out").rglob("*" + audio.TEMP_SUFFIX))
    records = (tmp_path / "out" / MANIFEST_NAME).read_text().splitlines()[1:]
    assert sorted(json.loads(r)["path"] for r in records) == files_under(tmp_path / "out")
    monkeypatch.setattr(sf.SoundFile, "write", real_write)
    again = protect_tree(src, tmp_path / "out", key)
    assert again.resumed == 5 and again.protected == 1 and not again.failed


def test_manifest_write_failure_stops_with_a_clear_error(tmp_path, key, monkeypatch):
    src = write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.1)})
    import poscuda_cli.manifest as manifest_module

    class FullFile:
        def write(self, text):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

        def close(self):
            pass

    real_open = open

    def open_full_for_append(path, mode="r", *args, **kwargs):
        if mode == "a":
            return FullFile()
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(manifest_module, "open", open_full_for_append, raising=False)
    with pytest.raises(ManifestError, match="No space left"):
        protect_tree(src, tmp_path / "out", key)


def test_empty_input_is_refused_before_writing(tmp_path, key):
    (tmp_path / "in").mkdir()
    with pytest.raises(PoscudaError, match="empty"):
        protect_tree(tmp_path / "in", tmp_path / "out", key)
    assert not (tmp_path / "out").exists()


def test_manifest_paths_cannot_make_writes_outside_out(tmp_path, key):
    src = write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.1)})
    out = tmp_path / "out"
    protect_tree(src, out, key)
    lines = (out / MANIFEST_NAME).read_text().splitlines()
    evil = {"path": "../../escape.wav", "size": 1, "mtime_ns": 1, "out_size": 1}
    (out / MANIFEST_NAME).write_text("\n".join(lines + [json.dumps(evil)]) + "\n")
    protect_tree(src, out, key)
    assert not (tmp_path / "escape.wav").exists() and not Path("/escape.wav").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


# -- property tests ---------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(frames=st.integers(0, 3000), channels=st.integers(1, 4), ntaps=st.integers(1, 40),
       ranges=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 400)), max_size=5),
       seed=st.integers(0, 2 ** 32 - 1))
def test_kernel_property(frames, channels, ntaps, ranges, seed):
    from poscuda_cli.signature.kernel import filter_ranges

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((frames, channels))
    taps = rng.uniform(-1, 1, ntaps)
    starts, stops = layout._clip_and_merge(np.array([s for s, _ in ranges], np.int64),
                                           np.array([s + n for s, n in ranges], np.int64), frames)
    y = filter_ranges(x, taps, starts, stops)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, reference(x, taps, starts, stops), rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(frames=st.integers(0, 6000), channels=st.integers(1, 3),
       dtype=st.sampled_from([("int16", None), ("int32", 24), ("int32", None), ("float32", None),
                              ("float64", None)]),
       kind=st.sampled_from(["offsets", "fractions", "onset", "tile", "whole"]),
       family=st.sampled_from(["lowpass", "bandstop"]), rate=st.sampled_from([8000, 16000, 44100]),
       label=st.text(min_size=1, max_size=12), seed=st.integers(0, 2 ** 16))
def test_transform_property(frames, channels, dtype, kind, family, rate, label, seed):
    name, bits = dtype
    rng = np.random.default_rng(seed)
    signal = rng.uniform(-0.9, 0.9, (frames, channels))
    if name.startswith("int"):
        width = bits or np.dtype(name).itemsize * 8
        quantum = 1 << (np.dtype(name).itemsize * 8 - width)
        x = (np.round(signal * (2 ** (width - 1) - 1)) * quantum).astype(name)
    else:
        quantum, x = 0, signal.astype(name)
    key = Key(bytes([seed % 256]) * 32, Params(filter=family, layout=kind, patches=3, patch_ms=20, frame_s=0.2))
    plan = key.label_plan(label)
    result = protect_clip(x, plan, rate, bits)
    assert result.audio.shape == x.shape and result.audio.dtype == x.dtype
    values = x / quantum if quantum else x.astype(np.float64)
    starts, stops = layout.ranges(plan.layout, frames, rate, layout.envelope(values, rate))
    outside = np.ones(frames, bool)
    for a, b in zip(starts, stops):
        outside[a:b] = False
    np.testing.assert_array_equal(result.audio[outside], x[outside])
    again = protect_clip(x.copy(), Key(key.secret, key.params).label_plan(label), rate, bits)
    np.testing.assert_array_equal(again.audio, result.audio)


@settings(max_examples=60, deadline=None)
@given(label=st.text(min_size=1, max_size=30), other=st.text(min_size=1, max_size=30),
       secret=st.binary(min_size=32, max_size=32))
def test_key_derivation_property(label, other, secret):
    key = Key(secret, Params())
    plan = key.label_plan(label)
    assert plan == Key(bytes(secret), Params()).label_plan(label)
    assert all(Params().notch_low_hz <= c <= Params().notch_high_hz for c, _ in filters.notch_bands(plan.filter, 8000))
    if other != label:
        assert key.label_plan(other) != plan
