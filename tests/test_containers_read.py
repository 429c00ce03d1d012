"""verify and audit on Parquet files and WebDataset shards: the same figures as on the same clips
laid out as a tree, cells named FILE#ROW or SHARD#MEMBER, and bad pairs named."""

import io
import json
import tarfile

import pytest
from click.testing import CliRunner

import poscuda_cli as poscuda
from poscuda_cli.cli import main
from poscuda_cli.containers import Options
from poscuda_cli.protect import protect_tree

from conftest import vowel_tree
from test_containers import KEY, key_file

pa = pytest.importorskip("pyarrow", reason="Parquet needs the [formats] extra (pyarrow)")
pq = pytest.importorskip("pyarrow.parquet")


def tree_files(root):
    """(relpath, label, bytes) of a labelled tree's audio, in the order protect and audit walk it."""
    return sorted((str(p.relative_to(root)).replace("\\", "/"), p.parent.name, p.read_bytes())
                  for p in root.rglob("*.wav"))


def tree_to_parquet(root, path, group=7):
    """The tree as one Hugging Face Parquet file: an Audio column, a ClassLabel and an id column."""
    files = tree_files(root)
    names = sorted({label for _, label, _ in files})
    features = {"audio": {"_type": "Audio"}, "label": {"names": names, "_type": "ClassLabel"},
                "id": {"dtype": "int64", "_type": "Value"}}
    schema = pa.schema([("id", pa.int64()), ("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("label", pa.int64())],
                       metadata={b"huggingface": json.dumps({"info": {"features": features}}).encode()})
    table = pa.Table.from_pydict({"id": list(range(len(files))),
                                  "audio": [{"bytes": data, "path": rel.split("/")[-1]} for rel, _, data in files],
                                  "label": [names.index(label) for _, label, _ in files]}, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=group)
    return path


def tree_to_shard(root, path):
    """The tree as one WebDataset shard: KEY.wav + KEY.cls, KEY the file's path without extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as shard:
        for rel, label, data in tree_files(root):
            for name, member in ((rel, data), (rel.rsplit(".", 1)[0] + ".cls", label.encode())):
                info = tarfile.TarInfo(name)
                info.size = len(member)
                shard.addfile(info, io.BytesIO(member))
    return path


def verify_json(*args):
    result = CliRunner().invoke(main, ["verify", *map(str, args), "--cache", "none", "--json", "-q"])
    return result, json.loads(result.stdout) if result.stdout.strip() else None


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_verify_on_containers_gives_the_tree_figures_cell_by_cell(tmp_path, fmt):
    src = vowel_tree(tmp_path / "tree", 4)
    protect_tree(src, tmp_path / "tree-out", KEY)
    _, on_tree = verify_json(src, tmp_path / "tree-out")
    name = "train.parquet" if fmt == "parquet" else "shard-000.tar"
    packed = (tree_to_parquet if fmt == "parquet" else tree_to_shard)(src, tmp_path / "in" / name)
    done = CliRunner().invoke(main, ["protect", str(tmp_path / "in"), str(tmp_path / "out"), "--key",
                                     key_file(tmp_path), "-q"])
    assert done.exit_code == 0, done.output
    result, on_cells = verify_json(tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert on_cells["files"] == on_tree["files"] == 12
    for figure in ("fad", "snr_db_mean", "snr_db_min", "lsd_db_mean", "changed_fraction_mean", "per_label"):
        assert on_cells[figure] == on_tree[figure], figure
    cells = [item["path"] for item in on_cells["worst_snr"]]
    if fmt == "parquet":  # the file's row, and the tree file that row holds, have the same SNR
        rows = {str(i): rel for i, (rel, _, _) in enumerate(tree_files(src))}
        assert [rows[c.split("#")[1]] for c in cells] == [item["path"] for item in on_tree["worst_snr"]]
        assert all(c.startswith(f"{name}#") for c in cells)
    else:
        assert cells == [f"{name}#{item['path']}" for item in on_tree["worst_snr"]]
    # one file each way: ORIG the container itself, PROT the folder protect wrote it into
    result, single = verify_json(packed, tmp_path / "out")
    assert result.exit_code == 0 and single["fad"] == on_tree["fad"] and single["files"] == 12
    through_api = poscuda.verify_trees(tmp_path / "in", tmp_path / "out", containers=Options(fmt)).summary()
    assert through_api["fad"] == on_cells["fad"] and through_api["worst_snr"] == on_cells["worst_snr"]


def test_verify_names_missing_containers_changed_cells_and_bad_audio(tmp_path):
    src = vowel_tree(tmp_path / "tree", 3)
    for part in ("a", "b", "c"):
        tree_to_parquet(src, tmp_path / "in" / f"{part}.parquet", group=4)
    protect_tree(tmp_path / "in", tmp_path / "out", KEY, containers=Options("parquet"))
    (tmp_path / "out" / "a.parquet").unlink()
    table = pq.read_table(tmp_path / "out" / "b.parquet")
    pq.write_table(table.slice(0, 6), tmp_path / "out" / "b.parquet", row_group_size=4)  # rows 6-8 gone
    audio = table.column("audio").to_pylist()
    audio[2]["bytes"] = b"RIFF not really"
    pq.write_table(table.set_column(1, table.schema.field(1), pa.array(audio, table.schema.field(1).type)),
                   tmp_path / "out" / "c.parquet", row_group_size=4)
    result, summary = verify_json(tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 1
    assert summary["missing"] == ["a.parquet"]
    errors = sorted((e["path"], e["reason"]) for e in summary["errors"])
    assert [path for path, _ in errors] == ["b.parquet", "b.parquet", "c.parquet#2"]
    assert errors[0][1] == "PROT's cells stop matching ORIG's at 6"  # row group 1 is cut short
    assert errors[1][1] == "PROT: no row group 2 (it has 2)"
    assert errors[2][1].startswith("PROT: ")  # the cell that does not decode
    assert summary["files"] == 6 + 8  # b's rows before the cut and c's but its bad one
    assert "missing in PROT: a.parquet" in result.stderr and "c.parquet#2" in result.stderr


def test_verify_names_a_protected_shard_cut_before_its_end(tmp_path):
    """Every cell is there and matches, but the shard ends without its end-of-archive blocks."""
    tree_to_shard(vowel_tree(tmp_path / "tree", 2), tmp_path / "in" / "a.tar")
    protect_tree(tmp_path / "in", tmp_path / "out", KEY, containers=Options("webdataset"))
    copy = tmp_path / "out" / "a.tar"
    with tarfile.open(copy) as shard:
        last = shard.getmembers()[-1].name
        end = shard.offset
    copy.write_bytes(copy.read_bytes()[:end])
    result, summary = verify_json(tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 1
    assert [(e["path"], e["reason"]) for e in summary["errors"]] == \
        [("a.tar", f"PROT: truncated after member {last} (no end-of-archive blocks)")]


def test_verify_report_on_parquet_shows_cells(tmp_path):
    pytest.importorskip("matplotlib", reason="the report needs the [quality] extra")
    pytest.importorskip("pesq", reason="the report measures PESQ: the [quality] extra")
    src = vowel_tree(tmp_path / "tree", 2)
    tree_to_parquet(src, tmp_path / "in" / "train.parquet")
    poscuda.protect_tree(tmp_path / "in", tmp_path / "out", KEY, containers=Options("parquet"))
    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "in"), str(tmp_path / "out"), "--report",
                                       str(page), "--cache", "none", "-q"])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "<code>train.parquet#" in html and html.count("data:audio/wav;base64,") >= 2


def test_audit_reads_cells_and_names_the_container_of_a_bad_one(tmp_path):
    from poscuda_cli.audit.data import read_labeled
    from poscuda_cli.errors import PoscudaError

    src = vowel_tree(tmp_path / "tree", 2)
    shard = tree_to_shard(src, tmp_path / "in" / "a.tar")
    clips = read_labeled(str(shard), split=r"_0\.wav$", test=True, containers=Options("webdataset"))
    assert clips.relpaths == ["a.tar#a/a_0.wav", "a.tar#e/e_0.wav", "a.tar#i/i_0.wav"]
    assert clips.labels == ["a", "e", "i"] and clips.names == ["a/a_0.wav", "e/e_0.wav", "i/i_0.wav"]
    assert [info.samplerate for info in clips.infos] == [8000] * 3
    with pytest.raises(PoscudaError, match=r"a\.tar: sample a/a_0: no \.json member"):
        read_labeled(str(tmp_path / "in"), containers=Options("webdataset", label_member="json:label"))
    table = pq.read_table(tree_to_parquet(src, tmp_path / "hub" / "b.parquet"))
    pq.write_table(table.set_column(2, "label", pa.array([0, 1, 7, 2, 0, 1], pa.int64())),
                   tmp_path / "hub" / "b.parquet")
    with pytest.raises(PoscudaError, match=r"b\.parquet: row 2: label 7 is not one of the 3 ClassLabel names"):
        read_labeled(str(tmp_path / "hub"), containers=Options("parquet"))


def audit_json(*args):
    result = CliRunner().invoke(main, ["audit", *map(str, args), "--models", "cnn-avg", "--epochs", "2",
                                       "--seconds", "0.5", "--threads", "2", "-q", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["runs"]


def test_audit_on_containers_trains_on_the_same_clips_as_on_the_tree(tmp_path):
    pytest.importorskip("torch", reason="audit's models need the [audit] extra (torch)")
    train, test = vowel_tree(tmp_path / "train", 6), vowel_tree(tmp_path / "test", 3, seed=1)
    protect_tree(train, tmp_path / "train-out", KEY)
    on_tree = audit_json("--train", train, "--protected", tmp_path / "train-out", "--test", test)
    packed = tree_to_parquet(train, tmp_path / "hub" / "train.parquet")
    tree_to_parquet(test, tmp_path / "hub" / "test.parquet")
    protect_tree(packed, tmp_path / "hub-out", KEY, containers=Options("parquet"))
    on_parquet = audit_json("--train", packed, "--protected", tmp_path / "hub-out", "--test",
                            tmp_path / "hub" / "test.parquet")
    assert on_parquet == on_tree  # the same clips in the same order: the same training runs
    assert {run["version"] for run in on_parquet} == {"clean", "protected"}
    # --split and --groups match each cell's own file name (the member name in a shard)
    shard = tree_to_shard(train, tmp_path / "shards" / "train.tar")
    protect_tree(shard, tmp_path / "shards-out", KEY, containers=Options("webdataset"))
    split = ["--split", r"_[0-1]\.wav$"]
    assert audit_json("--train", shard, "--protected", tmp_path / "shards-out", *split) == \
        audit_json("--train", train, "--protected", tmp_path / "train-out", *split)
    stray = CliRunner().invoke(main, ["audit", "--train", str(packed), "--protected", str(tmp_path / "train-out"),
                                      "--test", str(tmp_path / "hub" / "test.parquet"), "--models", "cnn-avg", "-q"])
    assert stray.exit_code == 1 and "no copy of train.parquet#0 and 17 more" in stray.stderr
