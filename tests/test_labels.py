"""Labels from a metadata table or a pattern instead of folders, and the Python API."""

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import poscuda_cli as poscuda
from poscuda_cli.cli import main
from poscuda_cli.errors import LabelsError
from poscuda_cli.key import write_key
from poscuda_cli.labels import PatternLabels, TableLabels

from conftest import write_tree

CLIP = ("WAV", "PCM_16", 8000, 1, 0.4)


def flat_fsdd(root):
    """FSDD's digits, flat: <digit>_<speaker>_<n>.wav, plus a README."""
    files = {f"{d}_{s}_{n}.wav": CLIP for d in "013" for s in ("ann", "bob") for n in range(2)}
    return write_tree(root, {**files, "README.md": b"flat digits\n"})


def foldered(flat, root):
    """The same clips as IN/<label>/name: what poscuda always protected."""
    for path in sorted(flat.glob("*.wav")):
        target = root / path.name[0] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return root


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def key_file(tmp_path, key):
    path = tmp_path / "k.json"
    write_key(key, path)
    return path


def test_same_label_name_same_bytes_whatever_the_layout(tmp_path, key_file):
    """A flat folder labelled by CSV, by pattern, and the <label>/ tree: identical audio, file for file."""
    flat = flat_fsdd(tmp_path / "flat")
    tree = foldered(flat, tmp_path / "tree")
    table = tmp_path / "meta.csv"
    table.write_text("file,digit\n" + "".join(f"{p.name},{p.name[0]}\n" for p in sorted(flat.glob("*.wav"))))
    assert run("protect", tree, tmp_path / "out-tree", "--key", key_file, "-q").exit_code == 0
    result = run("protect", flat, tmp_path / "out-csv", "--key", key_file, "--labels", table, "--path-column",
                 "file", "--label-column", "digit", "-q", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["protected"] == 12
    assert run("protect", flat, tmp_path / "out-re", "--key", key_file, "--label-from", r"^(\d)_", "-q").exit_code == 0
    for path in sorted(flat.glob("*.wav")):
        reference = (tmp_path / "out-tree" / path.name[0] / path.name).read_bytes()
        assert (tmp_path / "out-csv" / path.name).read_bytes() == reference
        assert (tmp_path / "out-re" / path.name).read_bytes() == reference
        assert reference != path.read_bytes()
    assert (tmp_path / "out-csv" / "README.md").read_bytes() == b"flat digits\n"  # OUT mirrors IN's layout


def test_esc50_like_csv_and_common_voice_like_tsv(tmp_path, key_file):
    esc = write_tree(tmp_path / "esc", {"audio/1-100-A-0.wav": CLIP, "audio/1-101-A-1.wav": CLIP,
                                        "audio/2-102-B-0.wav": CLIP, "audio/stray.wav": CLIP,
                                        "meta/esc50.csv": b"filename,fold,target,category\n"
                                                          b"audio/1-100-A-0.wav,1,0,dog\n"
                                                          b"audio/1-101-A-1.wav,1,1,rooster\n"
                                                          b"audio/2-102-B-0.wav,2,0,dog\n"})
    result = run("protect", esc, tmp_path / "esc-out", "--key", key_file, "--labels", esc / "meta/esc50.csv",
                 "--path-column", "filename", "--label-column", "category", "--json", "-q")
    assert result.exit_code == 1  # the stray, unlisted clip is reported and not copied
    summary = json.loads(result.stdout)
    assert summary["protected"] == 3 and summary["copied"] == 1
    assert summary["errors"] == [{"path": "audio/stray.wav", "reason": "not listed in esc50.csv; not copied"}]
    assert summary["labels"] == {"dog": 2, "rooster": 1}
    assert (tmp_path / "esc-out/meta/esc50.csv").read_bytes() == (esc / "meta/esc50.csv").read_bytes()
    assert not (tmp_path / "esc-out/audio/stray.wav").exists()
    clips = write_tree(tmp_path / "cv/clips", {"a.flac": ("FLAC", "PCM_16", 16000, 1, 0.3),
                                               "b.flac": ("FLAC", "PCM_16", 16000, 1, 0.3)})
    (tmp_path / "cv/validated.tsv").write_text("client_id\tpath\tsentence\taccent\n"
                                               "c1\ta.flac\thello there\tscottish\nc2\tb.flac\thi\tirish\n")
    result = run("protect", clips, tmp_path / "cv-out", "--key", key_file, "--labels", tmp_path / "cv/validated.tsv",
                 "--path-column", "path", "--label-column", "accent", "-q")
    assert result.exit_code == 0, result.output
    assert sf.info(str(tmp_path / "cv-out/a.flac")).format == "FLAC"


@pytest.mark.parametrize("rows, message", [
    ("f,l\nnot-there.wav,x\n", "not-there.wav, which is not a file"),
    ("f,l\n0_ann_0.wav,x\n0_ann_0.wav,y\n", "row 3: 0_ann_0.wav is listed twice, as 'x' and as 'y'"),
    ("f,l\n0_ann_0.wav,\n", "row 2: empty label"),
    ("f,l\n0_ann_0.wav,../x\n", "row 2: label '../x' looks like a path"),
    ("f,l\n0_ann_0.wav,a/b\n", "row 2: label 'a/b' looks like a path"),
    ("f,l\n../0_ann_0.wav,x\n", "row 2: path '../0_ann_0.wav' is not a relative path inside IN"),
    ("f,l\n0_ann_0.wav,x,extra\n", "row 2: 3 fields, the header has 2"),
    ("file,label\n0_ann_0.wav,x\n", "no column 'f' (columns: file, label)"),
    ("", "the label table is empty"),
])
def test_bad_tables_fail_before_anything_is_written(tmp_path, key_file, rows, message):
    flat = flat_fsdd(tmp_path / "flat")
    table = tmp_path / "meta.csv"
    table.write_text(rows)
    result = run("protect", flat, tmp_path / "out", "--key", key_file, "--labels", table, "--path-column", "f",
                 "--label-column", "l")
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_patterns_and_unmatched_files(tmp_path, key_file):
    flat = flat_fsdd(tmp_path / "flat")
    (flat / "noise.wav").write_bytes((flat / "0_ann_0.wav").read_bytes())
    no_group = run("protect", flat, tmp_path / "out", "--key", key_file, "--label-from", r"^\d_")
    assert no_group.exit_code == 2 and "needs a group" in no_group.stderr and not (tmp_path / "out").exists()
    assert run("protect", flat, tmp_path / "out", "--key", key_file, "--label-from", "(").exit_code == 2
    result = run("protect", flat, tmp_path / "out", "--key", key_file, "--label-from", r"^(\d)_", "--json", "-q")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["errors"] == [
        {"path": "noise.wav", "reason": r"--label-from '^(\\d)_' does not match; not copied"}]
    assert not (tmp_path / "out/noise.wav").exists()
    both = run("protect", flat, tmp_path / "o2", "--key", key_file, "--label-from", "(x)", "--labels", flat / "README.md")
    assert both.exit_code == 2 and "not both" in both.stderr
    assert run("protect", flat, tmp_path / "o3", "--key", key_file, "--path-column", "f").exit_code == 2


def test_rerun_with_other_labels_redoes_those_files(tmp_path, key_file):
    flat = flat_fsdd(tmp_path / "flat")
    table = tmp_path / "meta.csv"
    names = sorted(p.name for p in flat.glob("*.wav"))
    table.write_text("f,l\n" + "".join(f"{n},{n[0]}\n" for n in names))
    args = ["protect", flat, tmp_path / "out", "--key", key_file, "--labels", table, "--path-column", "f",
            "--label-column", "l", "--json", "-q"]
    assert json.loads(run(*args).stdout)["protected"] == 12
    first = (tmp_path / "out" / names[0]).read_bytes()
    table.write_text("f,l\n" + "".join(f"{n},{'z' if n == names[0] else n[0]}\n" for n in names))
    again = json.loads(run(*args).stdout)
    assert again["protected"] == 1 and again["resumed"] == 12  # 11 files + README
    assert (tmp_path / "out" / names[0]).read_bytes() != first


def test_verify_and_audit_take_the_same_label_options(tmp_path, key_file):
    flat = flat_fsdd(tmp_path / "flat")
    assert run("protect", flat, tmp_path / "out", "--key", key_file, "--label-from", r"^(\d)_", "-q").exit_code == 0
    result = run("verify", flat, tmp_path / "out", "--label-from", r"^(\d)_", "--json", "-q", "--cache", "none")
    assert result.exit_code == 0, result.output
    per_label = json.loads(result.stdout)["per_label"]
    assert sorted(per_label) == ["0", "1", "3"] and all(v["files"] == 4 for v in per_label.values())
    assert run("verify", flat, tmp_path / "out", "-q", "--cache", "none").exit_code == 1  # no label folders
    pytest.importorskip("torch", reason="audit needs the [audit] extra (torch)")
    result = run("audit", "--train", flat, "--protected", tmp_path / "out", "--label-from", r"^(\d)_", "--split",
                 "_0\\.wav$", "--models", "lstm", "--epochs", "1", "--seconds", "0.4", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == ["0", "1", "3"]


def test_label_sources_directly(tmp_path):
    flat = flat_fsdd(tmp_path / "flat")
    (tmp_path / "t.csv").write_text("p,l\n./0_ann_0.wav,zero\n")
    assert TableLabels(tmp_path / "t.csv", "p", "l", flat).label_of("0_ann_0.wav") == "zero"
    assert PatternLabels(r"_([a-z]+)_").label_of("0_bob_1.wav") == "bob"  # label = speaker
    with pytest.raises(LabelsError, match="looks like a path"):
        PatternLabels(r"^(.*)$").label_of("x/y.wav")


def test_api_protects_like_the_command_line(tmp_path):
    src = write_tree(tmp_path / "in", {"dog/a.wav": ("WAV", "PCM_16", 16000, 1, 0.5),
                                       "dog/b.wav": ("WAV", "PCM_24", 16000, 2, 0.5),
                                       "cat/c.wav": ("WAV", "FLOAT", 16000, 1, 0.5)})
    key = poscuda.keygen(tmp_path / "k.json")
    assert poscuda.load_key(tmp_path / "k.json") == key
    summary = poscuda.protect_tree(src, tmp_path / "out", tmp_path / "k.json")
    assert summary.protected == 3 and not summary.failed
    for rel, label, subtype, dtype in (("dog/a.wav", "dog", "PCM_16", "int16"), ("dog/b.wav", "dog", "PCM_24", "int32"),
                                       ("cat/c.wav", "cat", None, "float32")):
        native, rate = sf.read(src / rel, dtype=dtype, always_2d=True)
        written = sf.read(tmp_path / "out" / rel, dtype=dtype, always_2d=True)[0]
        np.testing.assert_array_equal(poscuda.protect_array(native, rate, label, key, subtype), written)
        as_float = sf.read(src / rel)[0]  # soundfile's default: float64, 1-D for mono
        expected = sf.read(tmp_path / "out" / rel)[0]
        got = poscuda.protect_array(as_float, rate, label, key, subtype)
        assert got.shape == as_float.shape and got.dtype == np.float64
        if subtype:
            np.testing.assert_array_equal(got, expected)
    report = poscuda.verify_trees(src, tmp_path / "out")
    assert report.summary()["files"] == 3 and report.fad > 0
    with pytest.raises(ValueError, match="int16 or int32"):
        poscuda.protect_array(np.zeros(10, np.int8), 8000, "dog", key)
    with pytest.raises(LabelsError, match="looks like a path"):
        poscuda.protect_array(np.zeros(10, np.int16), 8000, "../dog", key)


def test_api_doc_example_is_the_file_and_runs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    block = (docs / "api.md").read_text().split("## Example", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    example = (docs / "api_example.py").read_text()
    assert example.endswith(block)
    result = subprocess.run([sys.executable, str(docs / "api_example.py")], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "6 files protected" and result.stdout.splitlines()[-1] == "ok"
