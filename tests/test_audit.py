"""audit: the command on tiny generated trees, and (slow) the real question on FSDD."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from poscuda_cli.cli import main
from poscuda_cli.protect import protect_tree

from conftest import speechlike, vowel_tree, without_packages, write_tree

torch = pytest.importorskip("torch", reason="audit needs the [audit] extra (torch)")


def tone_tree(root, count=12):
    """Two labels that differ in pitch: easy to learn."""
    import soundfile as sf

    for label, pitch in (("low", 150.0), ("high", 600.0)):
        for i in range(count):
            t = np.arange(4000) / 8000
            signal = 0.3 * np.sin(2 * np.pi * pitch * (1 + 0.02 * i) * t) + 0.01 * speechlike(0.5, seed=i)[:, 0]
            path = root / label / f"{label}_{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, signal, 8000, subtype="PCM_16")
    return root


def test_balanced_takes_a_learnable_set_to_chance_and_the_gate_says_so(tmp_path):
    """On vowels a model learns perfectly from clean audio, balanced leaves a cnn-avg trained on the
    protected copy at chance (measured: 100% -> 33%): within the 99% binomial interval of a guesser's
    score on the 30 test clips, 4 to 17 right; --max-accuracy passes above that and trips below."""
    from scipy.stats import binom

    from poscuda_cli.key import Key
    from poscuda_cli.signature.params import STRENGTHS

    train, test = vowel_tree(tmp_path / "train", 24), vowel_tree(tmp_path / "test", 10, seed=1)
    protect_tree(train, tmp_path / "protected", Key(bytes(range(32)), STRENGTHS["balanced"]))
    args = ["audit", "--train", str(train), "--protected", str(tmp_path / "protected"), "--test", str(test),
            "--models", "cnn-avg", "--epochs", "12", "--seconds", "0.5", "--threads", "2", "-q"]
    result = CliRunner().invoke(main, args + ["--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels"] == ["a", "e", "i"] and report["chance"] == pytest.approx(1 / 3)
    (row,) = report["rows"]
    assert row["model"] == "cnn-avg" and row["shift"] == 0.0
    low, high = binom.interval(0.99, 30, report["chance"])
    assert row["clean_accuracy"] >= 0.9 and low / 30 <= row["protected_accuracy"] <= high / 30, row
    assert row["protected_train_accuracy"] >= 0.9  # it learned its training set: the shortcut, not the vowels
    passed = CliRunner().invoke(main, args + ["--max-accuracy", f"{row['protected_accuracy'] + 0.1:.2f}"])
    assert passed.exit_code == 0 and "clean-trained" in passed.stdout
    tripped = CliRunner().invoke(main, args + ["--max-accuracy", f"{row['protected_accuracy'] - 0.1:.2f}"])
    assert tripped.exit_code == 7 and "--max-accuracy" in tripped.stderr


def test_strongest_is_the_row_whose_protected_trained_attacker_scores_highest():
    """Neither the first row, the best clean-trained attacker, nor the best single key's or worst
    key's: the best mean over keys, what the protection is worth."""
    from poscuda_cli.audit.main import AuditResult, AuditRow

    rows = [AuditRow(model, 0.0, "none", clean, protected, low, high, 1.0, 3, 1)
            for model, clean, protected, low, high in (("raw", 1.0, 0.4, 0.3, 0.95), ("kws-linear", 0.6, 0.9, 0.8, 0.92),
                                                      ("cnn-avg", 0.8, 0.85, 0.85, 0.85))]
    assert AuditResult(["a", "b"], rows, []).to_dict()["strongest"]["model"] == "kws-linear"


def test_audit_shift_rows_and_bad_model(tmp_path, key):
    src = tone_tree(tmp_path / "in", count=6)
    protect_tree(src, tmp_path / "out", key)
    base = ["audit", "--train", str(src), "--protected", str(tmp_path / "out"), "--test", str(src),
            "--epochs", "1", "--seconds", "0.5", "-q", "--json"]
    result = CliRunner().invoke(main, base + ["--models", "raw,lstm,transformer,cnn-flat", "--shift", "0.2"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [(r["model"], r["shift"]) for r in rows] == [
        (m, s) for m in ("raw", "lstm", "transformer", "cnn-flat") for s in (0.0, 0.2)]
    runs = json.loads(result.stdout)["runs"]
    for r in rows:  # each row is its own runs: the clean one, and the protected one (one tree, one fold)
        mine = {run["version"]: run for run in runs if (run["model"], run["shift"]) == (r["model"], r["shift"])}
        assert set(mine) == {"clean", "protected"}
        assert r["clean_accuracy"] == mine["clean"]["test_accuracy"]
        assert r["protected_accuracy"] == r["protected_min"] == mine["protected"]["test_accuracy"]
    result = CliRunner().invoke(main, base + ["--models", "resnet"])
    assert result.exit_code == 2 and "resnet" in result.output


def test_audit_without_torch_says_how_to_install(tmp_path, monkeypatch):
    import sys

    import poscuda_cli.audit

    monkeypatch.delitem(sys.modules, "poscuda_cli.audit.attackers", raising=False)
    monkeypatch.delattr(poscuda_cli.audit, "attackers", raising=False)
    without_packages(monkeypatch, "torch")
    src = write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.1)})
    result = CliRunner().invoke(main, ["audit", "--train", str(src), "--protected", str(src), "--test", str(src)])
    assert result.exit_code == 6 and "pip install" in result.stderr


def test_audit_fresh_keys_in_memory_match_protect(tmp_path):
    """--keys protects in memory with the very samples protect writes, and reports the spread over keys."""
    from poscuda_cli.audit.data import labeled_files, read_clips
    from poscuda_cli.key import generate_key

    src = tone_tree(tmp_path / "in", count=4)
    key = generate_key()
    protect_tree(src, tmp_path / "out", key)
    files = labeled_files(src)
    in_memory = read_clips(str(src), files).protected(key)
    on_disk = read_clips(str(tmp_path / "out"), files)
    for a, b in zip(in_memory.data, on_disk.data):
        np.testing.assert_array_equal(a, b)
    args = ["audit", "--train", str(src), "--keys", "3", "--split", r"_[0-1]\.wav$", "--models", "lstm",
            "--epochs", "2", "--seconds", "0.5", "-q", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (row,) = report["rows"]
    assert row["keys"] == 3 and row["folds"] == 1
    versions = [r for r in report["runs"] if r["version"] != "clean"]
    assert sorted(r["version"] for r in versions) == ["key 1", "key 2", "key 3"]
    accuracies = [r["test_accuracy"] for r in versions]
    assert row["protected_min"] == min(accuracies) and row["protected_max"] == max(accuracies)
    assert row["protected_accuracy"] == pytest.approx(np.mean(accuracies))
    assert CliRunner().invoke(main, args + ["--protected", str(tmp_path / "out")]).exit_code == 2
    assert CliRunner().invoke(main, args[:4] + args[5:]).exit_code == 2  # neither --keys nor --protected


def test_audit_groups_hold_out_each_speaker_and_defenses_apply(tmp_path):
    import soundfile as sf

    for label, pitch in (("low", 150.0), ("high", 600.0)):
        for speaker in ("ann", "bob", "cat"):
            for i in range(3):
                t = np.arange(4000) / 8000
                path = tmp_path / "in" / label / f"{label}_{speaker}_{i}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, 0.3 * np.sin(2 * np.pi * pitch * (1 + 0.03 * i) * t), 8000, subtype="PCM_16")
    args = ["audit", "--train", str(tmp_path / "in"), "--keys", "1", "--groups", "_([a-z]+)_", "--models",
            "cnn-avg,raw", "--defense", "noise+specaugment", "--defense", "eq", "--defense", "mp3", "--epochs", "1",
            "--seconds", "0.5", "-q", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {r["fold"] for r in report["runs"]} == {"ann", "bob", "cat"}
    rows = {(r["model"], r["defense"]) for r in report["rows"]}
    assert rows == {("cnn-avg", d) for d in ("none", "noise+specaugment", "eq", "mp3")} | {
        ("raw", d) for d in ("none", "eq", "mp3")}  # SpecAugment needs a spectral front end
    assert all(r["folds"] == 3 for r in report["rows"])
    bad = CliRunner().invoke(main, args[:6] + ["[a-z]+"] + args[7:])
    assert bad.exit_code == 1 and "capture group" in bad.stderr


def test_batch_defenses_change_each_clip_differently():
    from poscuda_cli.audit import defenses

    waves = np.tile(speechlike(0.5, 8000)[:, 0].astype(np.float32), (4, 1))
    rng = np.random.default_rng(0)
    for name in defenses.BATCH:
        out = defenses.on_batch(name, waves, 8000, rng)
        assert out.shape == waves.shape and out.dtype == np.float32 and np.isfinite(out).all()
        assert not np.allclose(out[0], waves[0], atol=1e-4) and not np.allclose(out[0], out[1], atol=1e-4)
    for name in ("mp3", "ogg"):
        coded = defenses.on_dataset(name, waves[:1], 8000)
        assert coded.shape == (1, 4000) and 0.5 < np.corrcoef(coded[0], waves[0])[0, 1] < 1.0
    np.testing.assert_array_equal(defenses.on_dataset("resample8k", waves, 8000), waves)
    at16 = np.tile(speechlike(0.5, 16000)[:, 0].astype(np.float32), (2, 1))
    assert not np.allclose(defenses.on_dataset("resample8k", at16, 16000), at16, atol=1e-3)
    normalised = defenses.on_features("cmvn", np.random.default_rng(1).normal(3, 2, (2, 50, 20)))
    np.testing.assert_allclose(normalised.mean(axis=1), 0, atol=1e-9)


def test_stacked_defense_runs_each_step_in_turn():
    from poscuda_cli.audit import defenses
    from poscuda_cli.audit.main import audit
    from poscuda_cli.errors import PoscudaError

    waves = np.tile(speechlike(0.5, 8000)[:, 0].astype(np.float32), (3, 1))
    stacked = defenses.on_batch("eq+noise", waves, 8000, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(stacked, defenses.on_batch("noise", defenses.on_batch("eq", waves, 8000, rng),
                                                             8000, rng))
    np.testing.assert_array_equal(defenses.on_dataset("noise+mp3", waves[:1], 8000),
                                  defenses.on_dataset("mp3", waves[:1], 8000))  # batch steps wait for batches
    features = np.random.default_rng(1).normal(3, 2, (2, 50, 20))
    np.testing.assert_allclose(defenses.on_features("specaugment+cmvn", features).mean(axis=1), 0, atol=1e-9)
    assert defenses.invalid(["noise+specaugment+cmvn", "noise+noise", "none+eq", "eq+loud", "mp3"]) == [
        "noise+noise", "none+eq", "eq+loud"]
    assert defenses.applies_to("noise+mp3", "wave") and not defenses.applies_to("noise+cmvn", "wave")
    assert defenses.per_batch("mp3+specaugment") and not defenses.per_batch("mp3+cmvn")
    with pytest.raises(PoscudaError, match=r"noise\+noise"):
        audit("unused", keys=[object()], split="x", defenses=("none", "noise+noise"))
    bad = CliRunner().invoke(main, ["audit", "--train", ".", "--keys", "1", "--split", "x", "--defense", "eq+eq"])
    assert bad.exit_code == 2 and "eq+eq" in bad.stderr


def test_defended_attackers_train_on_defended_data_and_test_on_clean():
    """The training inputs an attacker sees under a defense are the defended ones, drawn afresh for
    every batch; the test inputs get only the front end (cmvn), never the augmentation."""
    from poscuda_cli.audit.main import front_end

    waves = np.stack([speechlike(0.5, 8000, seed=s)[:, 0] for s in range(6)]).astype(np.float32)
    plain_x, plain_test, none = front_end("mfcc", "none", waves, waves, 8000)
    train_x, test_x, batches = front_end("mfcc", "noise+cmvn", waves, waves, 8000)
    assert none is None and batches is not None
    np.testing.assert_array_equal(train_x, test_x)  # same clips, same front end: identical outside batches
    first, second = batches(np.arange(6), np.random.default_rng(0)), batches(np.arange(6), np.random.default_rng(1))
    assert first.shape == train_x.shape and not np.allclose(first, train_x, atol=0.05)
    assert not np.allclose(first, second, atol=0.05)  # a new draw per batch
    raw = front_end("mfcc", "cmvn", waves, waves, 8000)[0]
    assert not np.allclose(raw, plain_x, atol=0.1)  # cmvn changed the features the model sees


def test_noise_is_added_at_the_drawn_snr_and_specaugment_masks_as_stated(monkeypatch):
    import io

    import soundfile

    from poscuda_cli import features
    from poscuda_cli.audit import defenses

    waves = np.tile(speechlike(0.5, 8000)[:, 0].astype(np.float32), (64, 1))
    noisy = defenses.on_batch("noise", waves, 8000, np.random.default_rng(7))
    drawn = np.random.default_rng(7).uniform(10.0, 30.0, (64, 1))[:, 0]  # the SNRs the defense draws first
    measured = 10 * np.log10(np.sum(waves ** 2, axis=1) / np.sum((noisy - waves) ** 2, axis=1))
    np.testing.assert_allclose(measured, drawn, atol=0.5)
    mel = features.log_mel(waves, 8000)
    masked = defenses.on_log_mel("specaugment", mel, np.random.default_rng(4))
    bands = (masked != mel).all(axis=1)  # (clips, bands) masked over the whole clip
    assert bands.sum(axis=1).max() <= 16 and bands.sum(axis=1).mean() > 4  # two masks of 0-8 of 40 bands
    assert not (masked != mel).all(axis=2).any()  # no time masks outside the recipe
    written = []
    real_write = soundfile.write

    def spy(file, data, rate, **kwargs):
        written.append((kwargs.get("format"), kwargs.get("subtype")))
        return real_write(file, data, rate, **kwargs)

    monkeypatch.setattr(soundfile, "write", spy)
    coded = {name: defenses.on_dataset(name, waves[:1], 8000) for name in ("mp3", "ogg")}
    assert written == [("MP3", "MPEG_LAYER_III"), ("OGG", "VORBIS")]
    assert not np.allclose(coded["mp3"], coded["ogg"], atol=1e-3)  # two codecs, two different losses
    buffer = io.BytesIO()
    real_write(buffer, waves[0], 8000, format="MP3", subtype="MPEG_LAYER_III")
    buffer.seek(0)
    assert soundfile.info(buffer).format == "MP3"


def test_noise_and_specaugment_leave_what_the_test_set_also_has():
    """Noise goes on the clip, not on the zero padding every test clip also has; SpecAugment's masks
    take the mean level of the clip's sound, not the -100 dB floor of its padding (either would
    make train and test differ in a way no real attacker would choose)."""
    from poscuda_cli import features
    from poscuda_cli.audit import defenses

    padded = np.zeros((3, 8000), np.float32)
    padded[:, :4000] = speechlike(0.5, 8000)[:, 0]
    noisy = defenses.on_batch("noise", padded, 8000, np.random.default_rng(0))
    assert np.all(noisy[:, 4100:] == 0) and not np.allclose(noisy[:, :3900], padded[:, :3900], atol=1e-4)
    snr = 10 * np.log10(np.sum(padded ** 2, axis=1) / np.sum((noisy - padded) ** 2, axis=1))
    assert np.all((snr > 9) & (snr < 31)), snr
    mel = features.log_mel(padded, 8000)
    masked = defenses.on_log_mel("specaugment", mel, np.random.default_rng(3), widest=8)
    changed = masked != mel
    assert changed.any() and masked.min() >= mel.min()
    for clip, original, where in zip(masked, mel, changed):
        np.testing.assert_allclose(clip[where], original[original > original.min()].mean(), rtol=1e-6)


def test_recipe_is_noise_then_time_and_frequency_masks_then_cmvn():
    from poscuda_cli import features
    from poscuda_cli.audit import defenses

    waves = np.tile(speechlike(0.5, 8000)[:, 0].astype(np.float32), (2, 1))
    for colour in (0.0, 2.0):
        for snr in (3.0, 17.0):
            noisy = defenses._add_noise(waves, np.full((2, 1), snr), np.full((2, 1), colour), np.random.default_rng(1))
            measured = 10 * np.log10(np.sum(waves ** 2, axis=1) / np.sum((noisy - waves) ** 2, axis=1))
            np.testing.assert_allclose(measured, snr, atol=0.5)
        spectrum = np.abs(np.fft.rfft(noisy - waves, axis=1)) ** 2
        low, high = spectrum[:, 1:250].mean(), spectrum[:, 1000:2000].mean()  # below 500 Hz, 2-4 kHz
        assert (low / high > 30) if colour else (0.5 < low / high < 2), (colour, low / high)
    batch = np.tile(waves[:1], (200, 1))
    noisy = defenses.on_batch("recipe", batch, 8000, np.random.default_rng(2))
    snrs = 10 * np.log10(np.sum(batch ** 2, axis=1) / np.sum((noisy - batch) ** 2, axis=1))
    assert snrs.min() > -0.5 and snrs.max() < 20.5 and snrs.min() < 3 and snrs.max() > 17
    mel = features.log_mel(batch[:50], 8000)
    masked = defenses.on_log_mel("recipe", mel, np.random.default_rng(4))
    frames = (masked != mel).all(axis=2).sum(axis=1)  # whole frames masked: the time masks
    bands = (masked != mel).all(axis=1).sum(axis=1)  # whole bands masked: the frequency masks
    assert frames.max() <= 20 and frames.mean() > 5 and bands.max() <= 16 and bands.mean() > 3
    assert not (defenses.on_log_mel("specaugment", mel, np.random.default_rng(4)) != mel).all(axis=2).any()
    normalised = defenses.on_features("recipe", np.random.default_rng(1).normal(3, 2, (2, 50, 20)))
    np.testing.assert_allclose(normalised.mean(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(normalised.std(axis=1), 1, atol=1e-4)
    assert defenses.invalid(["recipe", "recipe+eq", "mp3+recipe", "recipe+noise", "recipe+cmvn",
                             "recipe+specaugment", "recipe+recipe"]) == [
        "recipe+noise", "recipe+cmvn", "recipe+specaugment", "recipe+recipe"]
    assert defenses.per_batch("recipe") and not defenses.applies_to("recipe", "wave")
    assert defenses.applies_to("recipe", "mfcc") and not defenses.applies_to("recipe", "kws")


@pytest.mark.slow
def test_protection_hurts_generalisation_on_fsdd(fsdd):
    """Protect FSDD in memory with a fixed balanced key, train the LSTM attacker: protected-trained must be far worse."""
    from poscuda_cli.audit import audit
    from poscuda_cli.key import Key
    from poscuda_cli.signature.params import STRENGTHS

    key = Key(bytes(range(32)), STRENGTHS["balanced"])  # fixed, so the result does not vary with a random draw
    result = audit(fsdd, split=r"_[0-4]\.wav$", keys=[key], models=["lstm"], epochs=8)
    (row,) = result.rows
    assert len(result.labels) == 10
    assert row.clean_accuracy >= 0.85, row
    assert row.protected_accuracy <= row.clean_accuracy - 0.5, row
