"""Any name the file system holds is protected, measured and reported: folder, file and tar member
names that are not UTF-8 (Python holds them as surrogate escapes) never end in a traceback."""

import csv
import io
import json
import os
import tarfile

import pytest
import soundfile as sf
from click.testing import CliRunner

from poscuda_cli.cli import main
from poscuda_cli.key import write_key

from conftest import speechlike

LABEL = os.fsdecode(b"l\xe9")  # Latin-1 "lé": not UTF-8
FILE = os.fsdecode(b"caf\xe9.wav")


def _wav(seed):
    buffer = io.BytesIO()
    sf.write(buffer, speechlike(0.4, 8000, seed=seed), 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture
def key_path(tmp_path, key):
    path = tmp_path / "k.json"
    write_key(key, path)
    return str(path)


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_non_utf8_label_folder_and_file_name_are_protected_and_reported(tmp_path, key, key_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    os.makedirs(os.path.join(src, LABEL))
    os.makedirs(src / "ok")
    with open(os.path.join(src, LABEL, "a.wav"), "wb") as handle:
        handle.write(_wav(1))
    with open(os.path.join(src, "ok", FILE), "wb") as handle:
        handle.write(_wav(2))

    result = _run("protect", src, dst, "--key", key_path, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["protected"] == 2 and summary["labels"] == {"l\\xe9": 1, "ok": 1}
    for rel in (os.path.join(LABEL, "a.wav"), os.path.join("ok", FILE)):
        before, _ = sf.read(os.fsencode(os.path.join(src, rel)), dtype="int16")
        after, _ = sf.read(os.fsencode(os.path.join(dst, rel)), dtype="int16")
        assert before.shape == after.shape and (before != after).any()
    # the label's seed is its bytes: not the same filter as the UTF-8 "lé", nor any other label's
    plans = {key.label_plan(label).filter for label in (LABEL, "l\u00e9", "ok")}
    assert len(plans) == 3
    assert _run("protect", src, dst, "--key", key_path).output.count("resumed 2") == 1

    table = tmp_path / "q.csv"
    measured = _run("verify", src, dst, "--csv", table, "--json", "--cache", "none")
    assert measured.exit_code == 0, measured.output
    assert sorted(item["path"] for item in json.loads(measured.stdout)["worst_snr"]) == ["l\\xe9/a.wav",
                                                                                          "ok/caf\\xe9.wav"]
    with open(table, encoding="utf-8") as handle:
        assert sorted(row["path"] for row in csv.DictReader(handle)) == ["l\\xe9/a.wav", "ok/caf\\xe9.wav"]


def test_a_bad_file_with_a_non_utf8_name_is_named_not_blamed_on_a_crash(tmp_path, key_path):
    src = tmp_path / "in"
    os.makedirs(src / "ok")
    with open(os.path.join(src, "ok", FILE), "wb") as handle:
        handle.write(b"RIFF not really a wave file")
    result = _run("protect", src, tmp_path / "out", "--key", key_path)
    assert result.exit_code == 1
    assert "poscuda: error: ok/caf\\xe9.wav: cannot decode audio" in result.output
    assert "Traceback" not in result.output


def test_a_tar_member_with_a_non_utf8_name_is_protected_and_measured(tmp_path, key_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    with tarfile.open(src / "s.tar", "w", format=tarfile.GNU_FORMAT) as shard:
        for name, data in ((FILE, _wav(3)), (os.fsdecode(b"caf\xe9.cls"), b"7")):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            shard.addfile(member, io.BytesIO(data))
    assert _run("protect", src, dst, "--key", key_path).exit_code == 0
    with tarfile.open(dst / "s.tar") as shard:
        assert shard.getnames() == [FILE, os.fsdecode(b"caf\xe9.cls")]
    table = tmp_path / "q.csv"
    measured = _run("verify", src, dst, "--csv", table, "--cache", "none")
    assert measured.exit_code == 0, measured.output
    with open(table, encoding="utf-8") as handle:
        assert [row["path"] for row in csv.DictReader(handle)] == ["s.tar#caf\\xe9.wav"]


def test_shard_labels_that_are_not_utf8_stay_apart(tmp_path, key, key_path):
    """Two .cls labels that differ only in bytes that are not UTF-8 are two labels, two filters."""
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    with tarfile.open(src / "s.tar", "w", format=tarfile.PAX_FORMAT) as shard:
        for i, label in enumerate((b"lab\xe9", b"lab\xe8")):
            for name, data in ((f"s{i}.wav", _wav(i)), (f"s{i}.cls", label)):
                member = tarfile.TarInfo(name)
                member.size = len(data)
                shard.addfile(member, io.BytesIO(data))
    result = _run("protect", src, dst, "--key", key_path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == {"lab\\xe8": 1, "lab\\xe9": 1}


def test_audio_that_libsndfile_cannot_read_is_an_error_not_a_copy(tmp_path, key_path):
    src = tmp_path / "in"
    os.makedirs(src / "ok")
    (src / "ok" / "a.m4a").write_bytes(b"\0\0\0\x20ftypM4A " + bytes(64))
    result = _run("protect", src, tmp_path / "out", "--key", key_path)
    assert result.exit_code == 1 and "ok/a.m4a: cannot decode audio" in result.output
    assert not (tmp_path / "out" / "ok" / "a.m4a").exists()
