"""audit: the command on tiny generated trees, and (slow) the real question on FSDD."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from poscuda_cli.cli import main
from poscuda_cli.protect import protect_tree

from conftest import speechlike, write_tree

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


def test_audit_cli_json_and_gate(tmp_path, key):
    src = tone_tree(tmp_path / "in")
    protect_tree(src, tmp_path / "out", key)
    args = ["audit", "--train", str(src), "--protected", str(tmp_path / "out"), "--split", r"_[0-2]\.wav$",
            "--models", "cnn-avg", "--epochs", "20", "--seconds", "0.5", "--threads", "1", "-q"]
    result = CliRunner().invoke(main, args + ["--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels"] == ["high", "low"] and report["chance"] == 0.5
    (row,) = report["rows"]
    assert row["model"] == "cnn-avg" and row["shift"] == 0.0
    assert row["clean_accuracy"] >= 0.8  # 6 test clips of two tones
    result = CliRunner().invoke(main, args + ["--max-accuracy", "0.0"])
    assert result.exit_code == 7 and "--max-accuracy" in result.stderr
    assert "clean-trained" in result.stdout


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
    assert all(0.0 <= r["protected_accuracy"] <= 1.0 for r in rows)
    result = CliRunner().invoke(main, base + ["--models", "resnet"])
    assert result.exit_code == 2 and "resnet" in result.output


def test_audit_without_torch_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    import sys

    import poscuda_cli

    monkeypatch.delitem(sys.modules, "poscuda_cli.attackers", raising=False)
    monkeypatch.delattr(poscuda_cli, "attackers", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_torch)
    src = write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.1)})
    result = CliRunner().invoke(main, ["audit", "--train", str(src), "--protected", str(src), "--test", str(src)])
    assert result.exit_code == 6 and "pip install" in result.stderr


@pytest.mark.slow
def test_protection_hurts_generalisation_on_fsdd(fsdd, tmp_path):
    """Protect FSDD with a default key, train the LSTM attacker: protected-trained must be far worse."""
    from poscuda_cli.audit import evaluate, load_split
    from poscuda_cli.key import Key
    from poscuda_cli.params import Params

    key = Key(bytes(range(32)), Params())  # fixed, so the result does not vary with a random draw
    protect_tree(fsdd, tmp_path / "out", key, jobs=2)
    labels, clean, protected, test = load_split(fsdd, tmp_path / "out", split=r"_[0-4]\.wav$")
    assert len(labels) == 10 and len(test.labels) == 300
    clean_acc = evaluate(clean, test, 10, ["lstm"], epochs=8)["lstm", 0.0][1]
    protected_acc = evaluate(protected, test, 10, ["lstm"], epochs=8)["lstm", 0.0][1]
    assert clean_acc >= 0.85, clean_acc
    assert protected_acc <= clean_acc - 0.3, (clean_acc, protected_acc)
