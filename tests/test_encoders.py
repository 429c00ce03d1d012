"""audit's pretrained-encoder attackers (kws-linear, kws-mlp, speaker-linear) on generated trees, offline."""

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from poscuda_cli import encoders
from poscuda_cli.encoders import kws
from poscuda_cli.cli import main

pytest.importorskip("onnxruntime", reason="the kws attackers need the [encoders] extra")
pytest.importorskip("sklearn", reason="the encoder attackers' heads need the [encoders] extra")


def call(seconds, samplerate, rng, kind):
    """One 'word' of three kinds a listener tells apart at once: a rising or falling voiced glide,
    or a buzz in two bursts; its timing, pitch and level vary from clip to clip."""
    t = np.arange(int(seconds * samplerate)) / samplerate
    start, length = rng.uniform(0.0, 0.15), rng.uniform(0.3, 0.4)
    where = np.clip((t - start) / length, 0, 1)
    base = rng.uniform(0.9, 1.1)
    if kind == "up":
        pitch = base * (150 + 250 * where)
    elif kind == "down":
        pitch = base * (400 - 250 * where)
    else:
        pitch = np.full_like(t, base * 110)
    phase = 2 * np.pi * np.cumsum(pitch) / samplerate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = ((t > start) & (t < start + length)).astype(float)
    if kind == "buzz":
        envelope *= np.sin(2 * np.pi * t / length * 2) > 0
    signal = voice * envelope * rng.uniform(0.1, 0.4) + 0.003 * rng.standard_normal(len(t))
    return signal / max(1.0, np.abs(signal).max() / 0.9)


def calls_tree(root, count, samplerate=8000, seconds=0.6, seed=0):
    rng = np.random.default_rng(seed)
    for kind in ("up", "down", "buzz"):
        for i in range(count):
            path = root / kind / f"{kind}_{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, call(seconds, samplerate, rng, kind), samplerate, subtype="PCM_16")
    return root


def rotated(train, root):
    """A copy of ``train`` under the same file names whose every label holds the next label's
    calls (up holds down's, down buzz's, buzz up's): trained on it, an attacker learns the labels
    rotated, and on clean test clips lands far below chance -- but only if it trained on it."""
    kinds = ["up", "down", "buzz"]
    for kind, other in zip(kinds, kinds[1:] + kinds[:1]):
        (root / kind).mkdir(parents=True)
        for path in (train / other).iterdir():
            (root / kind / path.name.replace(other, kind)).write_bytes(path.read_bytes())
    return root


@pytest.mark.parametrize("model", ["kws-linear", "kws-mlp", "speaker-linear"])
def test_encoder_attacker_learns_a_separable_set_and_trains_on_the_protected_copy(tmp_path, model):
    if model == "speaker-linear":
        pytest.importorskip("resemblyzer", reason="speaker-linear needs resemblyzer ([encoders])")
    train, test = calls_tree(tmp_path / "train", 16), calls_tree(tmp_path / "test", 8, seed=1)
    args = ["audit", "--train", str(train), "--protected", str(rotated(train, tmp_path / "rotated")),
            "--test", str(test), "--models", model, "-q", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (row,) = report["rows"]
    assert report["chance"] == pytest.approx(1 / 3)
    assert row["clean_accuracy"] >= 0.8, row  # 24 clean test clips; chance is 33%
    assert row["protected_train_accuracy"] >= 0.8 and row["protected_accuracy"] <= 0.2, row


def test_kws_window_centres_short_clips_and_keeps_the_middle_of_long_ones():
    from poscuda_cli.audio import AudioInfo
    from poscuda_cli.audit.data import Clips

    short = np.full((4000, 1), 1000, np.int16)  # 0.5 s at 8 kHz
    long = np.zeros((24000, 1), np.int16)  # 3 s at 8 kHz, a marker in its middle second
    long[8000:16000] = 2000
    infos = [AudioInfo(8000, 1, len(d), "WAV", "PCM_16", "FILE") for d in (short, long)]
    clips = Clips("", ["a/s.wav", "a/l.wav"], ["a", "a"], [short, long], infos)
    samples = kws.samples(clips)
    assert samples.shape == (2, 32000)
    loud = np.flatnonzero(np.abs(samples[0]) > 500)
    assert abs((loud[0] + loud[-1]) / 2 - 16000) < 50 and 7900 < len(loud) < 8100  # 0.5 s, centred
    np.testing.assert_allclose(samples[0, 12400:19600], 1000 / 32768 * 32767, rtol=1e-3)  # int16 units, 16 kHz
    middle = np.abs(samples[1]) > 500
    assert middle[8000:24000].all() and not middle[:7800].any() and not middle[24200:].any()
    embedded = encoders.embed("kws", clips)
    assert embedded.shape == (2, 16, 96) and np.isfinite(embedded).all()  # padded, not dropped


def test_kws_front_end_runs_one_clip_at_a_time():
    """The ONNX front end floors at 80 dB below the loudest bin of its whole input: a quiet clip
    batched beside a loud one would be floored by the loud one."""
    from poscuda_cli.audio import AudioInfo
    from poscuda_cli.audit.data import Clips

    rng = np.random.default_rng(0)
    quiet = (rng.standard_normal((16000, 1)) * 3).astype(np.int16)
    loud = (rng.standard_normal((16000, 1)) * 8000).astype(np.int16)
    info = AudioInfo(16000, 1, 16000, "WAV", "PCM_16", "FILE")
    alone = encoders.embed("kws", Clips("", ["q"], ["a"], [quiet], [info]))
    beside = encoders.embed("kws", Clips("", ["q", "l"], ["a", "a"], [quiet, loud], [info, info]))
    np.testing.assert_allclose(beside[0], alone[0], rtol=1e-4, atol=1e-4)


def missing_extra(monkeypatch, tmp_path, **patch):
    kws.model_paths.cache_clear()
    for name, value in patch.items():
        monkeypatch.setattr(name, value)
    src = calls_tree(tmp_path / "in", 2)
    result = CliRunner().invoke(main, ["audit", "--train", str(src), "--protected", str(src), "--test", str(src),
                                       "--models", "kws-linear", "-q"])
    kws.model_paths.cache_clear()
    return result


def test_without_openwakeword_audit_says_what_to_install(tmp_path, monkeypatch):
    from importlib import metadata

    def absent(name):
        raise metadata.PackageNotFoundError(name)

    result = missing_extra(monkeypatch, tmp_path, **{"poscuda_cli.encoders.kws.metadata.version": absent})
    assert result.exit_code == 6 and "openwakeword==0.4.0" in result.stderr and "poscuda[encoders]" in result.stderr


def test_a_later_openwakeword_is_refused_by_name(tmp_path, monkeypatch):
    result = missing_extra(monkeypatch, tmp_path, **{"poscuda_cli.encoders.kws.metadata.version": lambda _: "0.6.0"})
    assert result.exit_code == 6 and "found 0.6.0" in result.stderr and "downloads" in result.stderr


def test_an_encoder_file_missing_from_the_package_is_named(tmp_path, monkeypatch):
    result = missing_extra(monkeypatch, tmp_path,
                           **{"poscuda_cli.encoders.kws.KWS_FILES": ("melspectrogram.onnx", "gone.onnx")})
    assert result.exit_code == 6 and "openwakeword 0.4.0" in result.stderr and "gone.onnx" in result.stderr


def test_one_label_or_differing_test_labels_are_refused_by_name(tmp_path):
    src = calls_tree(tmp_path / "in", 3)
    lonely = tmp_path / "lonely"
    (lonely / "up").mkdir(parents=True)
    for path in (src / "up").iterdir():
        (lonely / "up" / path.name).write_bytes(path.read_bytes())
    base = ["--models", "kws-linear", "-q"]
    result = CliRunner().invoke(main, ["audit", "--train", str(lonely), "--protected", str(lonely), "--test",
                                       str(src)] + base)
    assert result.exit_code == 2 and "'up'" in result.stderr
    result = CliRunner().invoke(main, ["audit", "--train", str(src), "--protected", str(src), "--test",
                                       str(lonely)] + base)
    assert result.exit_code == 2 and "only in training: buzz, down" in result.stderr


def test_default_audit_runs_every_kind_of_attacker_and_names_the_strongest(tmp_path):
    pytest.importorskip("resemblyzer", reason="speaker-linear needs resemblyzer ([encoders])")
    pytest.importorskip("torch", reason="the models trained from scratch need the [audit] extra")
    from poscuda_cli.audit.models import DEFAULT_PLAN

    train, test = calls_tree(tmp_path / "train", 6), calls_tree(tmp_path / "test", 3, seed=1)
    args = ["audit", "--train", str(train), "--protected", str(train), "--test", str(test), "--epochs", "1",
            "--seconds", "0.6", "-q"]
    report = json.loads(CliRunner().invoke(main, args + ["--json"]).stdout)
    assert [(r["model"], r["defense"]) for r in report["rows"]] == list(DEFAULT_PLAN)
    assert {"cnn-avg", "kws-linear"} <= {m for m, _ in DEFAULT_PLAN} and ("cnn-flat", "recipe") in DEFAULT_PLAN
    best = max(report["rows"], key=lambda r: r["protected_accuracy"])
    assert report["strongest"] == best
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    last = table.stdout.strip().splitlines()[-1]
    assert last.startswith(f"strongest attacker: {best['model']}") and f"{best['protected_accuracy']:.1%}" in last


def test_the_torch_port_of_kws_matches_onnxruntime_on_real_clips(fsdd):
    """The port (for gradients) runs the wheel's own ONNX graphs node by node in torch: on FSDD
    clips, through the same resampling and window, its embeddings are onnxruntime's."""
    torch = pytest.importorskip("torch", reason="the torch port needs torch (the [audit] extra)")
    pytest.importorskip("onnx", reason="the torch port reads the graphs with onnx (the [encoders] extra)")
    from poscuda_cli.audit.data import labeled_files, read_clips
    from poscuda_cli.encoders.kws_torch import Kws

    files = [f for f in labeled_files(str(fsdd)) if f[0].endswith(("_0.wav", "_25.wav"))][::4]
    clips = read_clips(str(fsdd), files)
    reference = encoders.embed("kws", clips)
    with torch.no_grad():
        ported = Kws()(torch.from_numpy(kws.samples(clips))).numpy()
    assert len(clips.data) >= 20 and ported.shape == reference.shape
    error = np.linalg.norm(ported - reference, axis=(1, 2)) / np.linalg.norm(reference, axis=(1, 2))
    assert error.max() < 1e-4
