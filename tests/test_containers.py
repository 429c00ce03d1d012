"""protect on Parquet files (Hugging Face layout) and WebDataset tar shards: round trips on generated data."""

import io
import json
import tarfile

import pytest
import soundfile as sf
from click.testing import CliRunner

from poscuda_cli.cli import main
from poscuda_cli.key import Key, write_key
from poscuda_cli.signature.params import STRENGTHS
from poscuda_cli.protect import protect_tree

from conftest import speechlike, without_packages

pa = pytest.importorskip("pyarrow", reason="Parquet needs the [formats] extra (pyarrow)")
pq = pytest.importorskip("pyarrow.parquet")

NAMES = ["down", "up", "yes"]
KEY = Key(bytes(range(32)), STRENGTHS["balanced"])


def clip_bytes(seed, fmt="WAV", subtype="PCM_16", rate=16000, seconds=0.4):
    buffer = io.BytesIO()
    sf.write(buffer, speechlike(seconds, rate, seed=seed)[:, 0], rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


CELLS = [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("MP3", "MPEG_LAYER_III"), ("WAV", "PCM_24"), ("FLAC", "PCM_24")]


def features(label_type):
    label = {"names": NAMES, "_type": "ClassLabel"} if label_type == "int" else {"dtype": "string", "_type": "Value"}
    return {"info": {"features": {"audio": {"sampling_rate": 16000, "_type": "Audio"}, "label": label,
                                  "text": {"dtype": "string", "_type": "Value"}}}}


def write_parquet(path, rows=10, label_type="int", group=4, broken=None, **writer):
    """``rows`` rows of WAV/FLAC/MP3 cells, a ClassLabel (or string) label and a text column, in row
    groups of ``group``, ZSTD-compressed unless ``writer`` (pq.write_table's options) says otherwise;
    with ``broken``, that row's audio bytes are not audio."""
    audio, labels, texts = [], [], []
    for row in range(rows):
        fmt, subtype = CELLS[row % len(CELLS)]
        data = b"RIFF not really" if row == broken else clip_bytes(row, fmt, subtype)
        audio.append({"bytes": data, "path": f"clip{row}.{'wav' if fmt == 'WAV' else fmt.lower()}"})
        labels.append(row % 3 if label_type == "int" else NAMES[row % 3])
        texts.append(f"utterance {row}")
    schema = pa.schema([("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("label", pa.int64() if label_type == "int" else pa.string()), ("text", pa.string())],
                       metadata={b"huggingface": json.dumps(features(label_type)).encode()})
    table = pa.Table.from_pydict({"audio": audio, "label": labels, "text": texts}, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=group, **{"compression": "zstd", **writer})
    return path


def key_file(tmp_path):
    path = tmp_path / "k.json"
    write_key(KEY, path, force=True)
    return str(path)


def as_tree_protects(tmp_path, cells):
    """What protect writes for each (bytes, filename, label) when it is a file in a labelled tree."""
    tree = tmp_path / "as-tree"
    for data, name, label in cells:
        (tree / label).mkdir(parents=True, exist_ok=True)
        (tree / label / name).write_bytes(data)
    protect_tree(tree, tmp_path / "as-tree-out", KEY)
    return {(label, name): (tmp_path / "as-tree-out" / label / name).read_bytes() for _, name, label in cells}


@pytest.mark.parametrize("label_type", ["int", "string"])
def test_parquet_round_trip_keeps_everything_but_the_audio(tmp_path, label_type):
    src = write_parquet(tmp_path / "in" / "data" / "train-00000.parquet", label_type=label_type)
    (tmp_path / "in" / "README.md").write_text("dataset card\n")
    result = CliRunner().invoke(main, ["protect", str(tmp_path / "in"), str(tmp_path / "out"), "--key",
                                       key_file(tmp_path), "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["protected"] == 10 and summary["containers"] == 1 and summary["copied"] == 1
    assert summary["labels"] == {"down": 4, "up": 3, "yes": 3}
    assert (tmp_path / "out" / "README.md").read_text() == "dataset card\n"
    before, after = pq.ParquetFile(src), pq.ParquetFile(tmp_path / "out" / "data" / "train-00000.parquet")
    assert after.schema_arrow.equals(before.schema_arrow, check_metadata=True)
    assert [after.metadata.row_group(i).num_rows for i in range(after.metadata.num_row_groups)] == [4, 4, 2]
    assert after.metadata.row_group(0).column(0).compression == "ZSTD"
    old, new = before.read(), after.read()
    assert new.column("label").equals(old.column("label")) and new.column("text").equals(old.column("text"))
    old_audio, new_audio = old.column("audio").to_pylist(), new.column("audio").to_pylist()
    assert [c["path"] for c in new_audio] == [c["path"] for c in old_audio]
    labels = [NAMES[v] if label_type == "int" else v for v in old.column("label").to_pylist()]
    expected = as_tree_protects(tmp_path, [(c["bytes"], c["path"], label) for c, label in zip(old_audio, labels)])
    for cell, label in zip(new_audio, labels):
        assert cell["bytes"] == expected[label, cell["path"]]  # the bytes protect writes for that file
    for cell, original in zip(new_audio, old_audio):
        a, b = sf.info(io.BytesIO(original["bytes"])), sf.info(io.BytesIO(cell["bytes"]))
        assert (a.format, a.subtype, a.samplerate, a.channels, a.frames) == \
               (b.format, b.subtype, b.samplerate, b.channels, b.frames)
        assert cell["bytes"] != original["bytes"]


def column_chunks(path):
    """(rows, [(column, codec, has statistics, has a dictionary page)]) of each row group."""
    metadata = pq.ParquetFile(path).metadata
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    return [(group.num_rows, [(c.path_in_schema, c.compression, c.is_stats_set, c.has_dictionary_page)
                              for c in map(group.column, range(group.num_columns))]) for group in groups]


def test_parquet_keeps_each_column_chunks_codec_statistics_and_dictionary(tmp_path):
    src = write_parquet(tmp_path / "in" / "mixed.parquet",
                        compression={"audio.bytes": "zstd", "audio.path": "snappy", "label": "gzip", "text": "none"},
                        write_statistics=["label"], use_dictionary=["audio.path", "text"])
    before = column_chunks(src)
    assert before[0] == (4, [("audio.bytes", "ZSTD", False, False), ("audio.path", "SNAPPY", False, True),
                             ("label", "GZIP", True, False), ("text", "UNCOMPRESSED", False, True)])
    protect_tree(src, tmp_path / "out", KEY, containers=_options("parquet"))
    assert column_chunks(tmp_path / "out" / "mixed.parquet") == before


def test_datasets_loads_the_protected_parquet_with_the_same_features(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the datasets library is a test-only check")
    write_parquet(tmp_path / "in" / "train.parquet")
    protect_tree(tmp_path / "in" / "train.parquet", tmp_path / "out", KEY,
                 containers=_options("parquet"))
    original = datasets.load_dataset("parquet", data_files=str(tmp_path / "in" / "train.parquet"), split="train")
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "out" / "train.parquet"), split="train")
    assert loaded.features == original.features and loaded.num_rows == 10
    assert loaded.features["label"].names == NAMES
    raw = loaded.cast_column("audio", datasets.Audio(decode=False))
    assert raw[3]["audio"]["path"] == "clip3.wav" and raw["text"] == original["text"]
    # docs/api.md's recipe: protect_bytes through map gives the cells the CLI wrote
    import poscuda_cli as poscuda

    names = original.features["label"].names
    mapped = original.cast_column("audio", datasets.Audio(decode=False)).map(
        lambda row: {"audio": {"bytes": poscuda.protect_bytes(row["audio"]["bytes"], names[row["label"]], KEY),
                               "path": row["audio"]["path"]}})
    assert [c["bytes"] for c in mapped["audio"]] == [c["bytes"] for c in raw["audio"]]


def _options(fmt, **kwargs):
    from poscuda_cli.containers import Options

    return Options(fmt, **kwargs)


def test_bad_parquet_cells_are_named_and_their_file_is_not_written(tmp_path):
    write_parquet(tmp_path / "in" / "a.parquet", broken=6)
    write_parquet(tmp_path / "in" / "b.parquet")
    result = CliRunner().invoke(main, ["protect", str(tmp_path / "in"), str(tmp_path / "out"), "--key",
                                       key_file(tmp_path), "-q"])
    assert result.exit_code == 1
    assert "a.parquet: row 6: cannot decode audio" in result.stderr and "not written" in result.stderr
    assert not (tmp_path / "out" / "a.parquet").exists() and (tmp_path / "out" / "b.parquet").exists()
    assert not list((tmp_path / "out").rglob("*.poscuda-tmp"))
    again = CliRunner().invoke(main, ["protect", str(tmp_path / "in"), str(tmp_path / "out"), "--key",
                                      key_file(tmp_path), "--json", "-q"])
    assert json.loads(again.stdout)["resumed"] == 1  # b.parquet, finished the first time


def test_a_label_outside_the_classlabel_names_or_a_missing_column_is_named(tmp_path):
    path = write_parquet(tmp_path / "in" / "a.parquet", rows=4)
    table = pq.read_table(path)
    table = table.set_column(1, table.schema.field(1), pa.array([0, 1, 7, 2], pa.int64()))
    pq.write_table(table, path)
    summary = protect_tree(tmp_path / "in", tmp_path / "out", KEY, containers=_options("parquet"))
    assert summary.failed == [("a.parquet", "row 2: label 7 is not one of the 3 ClassLabel names; not written")]
    summary = protect_tree(tmp_path / "in", tmp_path / "out2", KEY, containers=_options("parquet", label_column="speaker"))
    assert summary.failed[0][0] == "a.parquet" and "no label column 'speaker'" in summary.failed[0][1]
    assert "columns: audio, label, text" in summary.failed[0][1]


def test_one_container_as_input_is_protected_and_one_of_another_format_refused(tmp_path):
    src = write_parquet(tmp_path / "data" / "train.parquet", rows=3)
    result = CliRunner().invoke(main, ["protect", str(src), str(tmp_path / "out"), "--key", key_file(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    before = pq.read_table(src).column("audio").to_pylist()
    after = pq.read_table(tmp_path / "out" / "train.parquet").column("audio").to_pylist()
    assert len(after) == 3 and all(a["bytes"] != b["bytes"] for a, b in zip(before, after))
    same = CliRunner().invoke(main, ["protect", str(src), str(tmp_path / "data"), "--key", key_file(tmp_path)])
    assert same.exit_code == 4 and "overwrite" in same.stderr
    shard = write_shard(tmp_path / "shards" / "s.tar")
    for one, fmt in ((shard, "parquet"), (src, "webdataset")):  # copied out as "another file" before
        wrong = CliRunner().invoke(main, ["protect", str(one), str(tmp_path / f"as-{fmt}"), "--key",
                                          key_file(tmp_path), "--format", fmt])
        assert wrong.exit_code == 2 and f"not a {fmt} file" in wrong.stderr
        assert not (tmp_path / f"as-{fmt}").exists()


def test_a_hub_folder_with_a_stray_wav_is_never_half_protected(tmp_path):
    """Auto-detection refuses a folder holding audio files and Parquet files before writing anything;
    --format picks one kind and the other is listed as skipped, never copied out unprotected."""
    src = tmp_path / "hub"
    write_parquet(src / "data" / "train.parquet", rows=3)
    (src / "samples").mkdir()
    (src / "samples" / "demo.wav").write_bytes(clip_bytes(1))
    protect = ["protect", str(src), "--key", key_file(tmp_path)]

    mixed = CliRunner().invoke(main, protect[:2] + [str(tmp_path / "out")] + protect[2:])
    assert mixed.exit_code == 2 and not (tmp_path / "out").exists()
    for named in ("data/train.parquet", "samples/demo.wav", "--format parquet", "--format tree"):
        assert named in mixed.stderr

    as_tree = CliRunner().invoke(main, protect[:2] + [str(tmp_path / "tree"), "--json"] + protect[2:]
                                 + ["--format", "tree"])
    assert as_tree.exit_code == 0, as_tree.output
    assert not (tmp_path / "tree" / "data").exists() and (tmp_path / "tree" / "samples" / "demo.wav").exists()
    assert [s["path"] for s in json.loads(as_tree.stdout)["skipped"]] == ["data/train.parquet"]
    assert "skipped data/train.parquet: Parquet file, not copied unprotected" in as_tree.stderr
    assert "protected 1 files" in as_tree.stderr

    as_parquet = CliRunner().invoke(main, protect[:2] + [str(tmp_path / "pq")] + protect[2:] + ["--format", "parquet"])
    assert as_parquet.exit_code == 0, as_parquet.output
    assert not (tmp_path / "pq" / "samples").exists()
    assert "protected 3 clips in 1 parquet file(s)" in as_parquet.stderr
    original = pq.read_table(src / "data" / "train.parquet").column("audio").to_pylist()
    protected = pq.read_table(tmp_path / "pq" / "data" / "train.parquet").column("audio").to_pylist()
    assert all(a["bytes"] != b["bytes"] for a, b in zip(original, protected))


def test_audio_in_hidden_folders_does_not_make_a_folder_mixed(tmp_path):
    """The tree walk skips hidden folders, and so does detection."""
    from poscuda_cli.containers import detect
    from poscuda_cli.errors import LabelsError

    write_parquet(tmp_path / "hub" / "data" / "train.parquet", rows=2)
    (tmp_path / "hub" / ".cache").mkdir()
    (tmp_path / "hub" / ".cache" / "x.wav").write_bytes(clip_bytes(2))
    assert detect(str(tmp_path / "hub")) == "parquet"
    (tmp_path / "hub" / "x.tar").write_bytes(b"")
    with pytest.raises(LabelsError, match="Parquet files .* and tar shards"):
        detect(str(tmp_path / "hub"))


def write_shard(path, samples=6, label_member="cls", duplicate=False):
    """Samples of KEY.flac (or .wav) + KEY.cls / KEY.json, a folder member and a text-only sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as shard:
        def add(name, data, mtime=1_700_000_000):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uname = len(data), mtime, 0o640, "publisher"
            shard.addfile(info, io.BytesIO(data))

        folder = tarfile.TarInfo("part0")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        shard.addfile(folder)
        for i in range(samples):
            key = f"part0/s{i:04d}"
            audio = clip_bytes(i, "FLAC", "PCM_16") if i % 2 else clip_bytes(i)
            add(f"{key}.{'flac' if i % 2 else 'wav'}", audio)
            label = NAMES[i % 3]
            if label_member == "cls":
                add(f"{key}.cls", f"{label}\n".encode())
            else:
                add(f"{key}.json", json.dumps({"label": label, "id": i}).encode())
            add(f"{key}.txt", f"transcript {i}".encode())
        add("part0/notes.txt", b"no audio here")
        if duplicate:
            add("part0/s0000.wav", clip_bytes(99))
    return path


def members(path):
    with tarfile.open(path) as shard:
        return [(m.name, m.type, m.mode, m.mtime, m.uname, shard.extractfile(m).read() if m.isfile() else None)
                for m in shard]


@pytest.mark.parametrize("label_member", ["cls", "json:label"])
def test_webdataset_round_trip_keeps_members_in_order(tmp_path, label_member):
    src = write_shard(tmp_path / "in" / "shard-000.tar", label_member=label_member.split(":")[0])
    result = CliRunner().invoke(main, ["protect", str(tmp_path / "in"), str(tmp_path / "out"), "--key",
                                       key_file(tmp_path), "--label-member", label_member, "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["protected"] == 6
    old, new = members(src), members(tmp_path / "out" / "shard-000.tar")
    assert [m[:5] for m in new] == [m[:5] for m in old]  # names, types, modes, times, owners, in order
    audio = [(m, n) for m, n in zip(old, new) if m[0].endswith((".wav", ".flac"))]
    assert len(audio) == 6
    assert all(m[5] == n[5] for m, n in zip(old, new) if not m[0].endswith((".wav", ".flac")))
    cells = [(m[5], m[0].split("/")[-1], NAMES[int(m[0].split("/s")[1][:4]) % 3])
             for m, _ in audio]
    expected = as_tree_protects(tmp_path, cells)
    for (m, n), (_, name, label) in zip(audio, cells):
        assert n[5] == expected[label, name] != m[5]


def test_webdataset_duplicate_keys_and_truncated_shards_are_named(tmp_path):
    write_shard(tmp_path / "in" / "dup.tar", duplicate=True)
    good = write_shard(tmp_path / "in" / "good.tar")
    cut = tmp_path / "in" / "cut.tar"
    cut.write_bytes(good.read_bytes()[:20000])
    summary = protect_tree(tmp_path / "in", tmp_path / "out", KEY, containers=_options("webdataset"))
    failed = dict(summary.failed)
    assert set(failed) == {"dup.tar", "cut.tar"}
    assert "key 'part0/s0000' appears twice" in failed["dup.tar"]
    assert "truncated" in failed["cut.tar"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == ["good.tar"]


def cut_shard(good, cut, where):
    """``good`` cut ``where``, written to ``cut``; returns the name of the last whole member. tarfile
    reads each of these cuts to a quiet end, as if the shard ended there."""
    with tarfile.open(good) as shard:
        found = shard.getmembers()
        end = shard.offset  # where the end-of-archive blocks start
    s0001 = next(i for i, m in enumerate(found) if m.name == "part0/s0001.flac")
    offset, last = {"between samples": (found[s0001].offset, s0001 - 1),
                     "in a header": (found[s0001 + 1].offset + 100, s0001),
                     "in a body": (found[s0001].offset_data + 1000, s0001 - 1),
                     "before the end blocks": (end, len(found) - 1)}[where]
    cut.write_bytes(good.read_bytes()[:offset])
    return found[last].name


@pytest.mark.parametrize("where", ["between samples", "in a header", "in a body", "before the end blocks"])
def test_a_shard_cut_anywhere_is_named_truncated_and_not_written(tmp_path, where):
    from poscuda_cli import containers
    from poscuda_cli.errors import PoscudaError

    good = write_shard(tmp_path / "good.tar")
    cut = tmp_path / "in" / "cut.tar"
    cut.parent.mkdir()
    last = cut_shard(good, cut, where)
    result = CliRunner().invoke(main, ["protect", str(tmp_path / "in"), str(tmp_path / "out"), "--key",
                                       key_file(tmp_path), "-q"])
    assert result.exit_code == 1, result.output
    assert f"cut.tar: truncated after member {last}" in result.stderr
    assert not [p for p in (tmp_path / "out").rglob("*") if not p.name.startswith(".")]  # not even a temporary
    options = containers.Options("webdataset")  # verify and audit read it through these
    for read in (lambda: options.kind.count_rows(cut), lambda: list(options.kind.read_cells(cut, options))):
        with pytest.raises(PoscudaError, match=f"cut.tar: truncated after member {last} "):
            read()


@pytest.mark.parametrize("codec", ["gz", "xz"])
def test_a_damaged_compressed_shard_is_named_not_a_traceback(tmp_path, codec):
    import gzip
    import lzma

    raw = write_shard(tmp_path / "good.tar").read_bytes()
    packed = gzip.compress(raw, mtime=0) if codec == "gz" else lzma.compress(raw)
    damaged = bytearray(packed)
    for i in range(len(damaged) // 2, len(damaged) // 2 + 64):
        damaged[i] ^= 0x5A
    (tmp_path / "s.tar").write_bytes(bytes(damaged))
    from poscuda_cli.errors import PoscudaError

    options = _options("webdataset")
    with pytest.raises(PoscudaError, match="s.tar: (unreadable|damaged|truncated)"):  # verify and audit read these
        list(options.kind.read_cells(tmp_path / "s.tar", options))


@pytest.mark.parametrize("name", ["s.tar.gz", "s.tgz", "s.tar"])
def test_a_compressed_shard_is_refused_by_protect_never_copied(tmp_path, name):
    """protect writes shards uncompressed: a compressed one (by its name or its bytes) is named and
    not written, never copied as an unknown file; verify and audit read it as it is."""
    import gzip

    raw = write_shard(tmp_path / "good.tar").read_bytes()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).write_bytes(gzip.compress(raw, mtime=0))
    result = CliRunner().invoke(main, ["protect", str(tmp_path / "in"), str(tmp_path / "out"), "--key",
                                       key_file(tmp_path)])
    assert result.exit_code == 1 and f"{name}: a gzip-compressed shard" in result.stderr, result.output
    assert not (tmp_path / "out" / name).exists()
    options = _options("webdataset")
    assert len(list(options.kind.read_cells(tmp_path / "in" / name, options))) == 6
    (tmp_path / "in" / "a").mkdir()
    (tmp_path / "in" / "a" / "x.wav").write_bytes(clip_bytes(1))
    mixed = CliRunner().invoke(main, ["protect", str(tmp_path / "in"), str(tmp_path / "out2"), "--key",
                                      key_file(tmp_path)])
    assert mixed.exit_code == 2 and "tar shards" in mixed.stderr


def test_parquet_audio_this_file_does_not_hold_or_a_second_audio_column_is_refused(tmp_path):
    """Cells that only point at a file elsewhere, and audio in a column protect was not asked to
    protect, would go out unprotected: the file is not written, and the error says why."""
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    by_path = pa.table({"audio": pa.array([{"bytes": clip_bytes(1), "path": "a.wav"},
                                           {"bytes": None, "path": "/elsewhere/b.wav"}], struct),
                        "label": ["yes", "no"]})
    two = pa.table({"a1": pa.array([{"bytes": clip_bytes(2), "path": "x.wav"}], struct),
                    "a2": pa.array([{"bytes": clip_bytes(3), "path": "y.wav"}], struct), "label": ["yes"]})
    for name, table, options in (("by-path", by_path, _options("parquet")),
                                 ("two", two, _options("parquet", audio_column="a1"))):
        (tmp_path / name).mkdir()
        pq.write_table(table, tmp_path / name / f"{name}.parquet")
        summary = protect_tree(tmp_path / name, tmp_path / f"{name}-out", KEY, containers=options)
        assert [path for path, _ in summary.failed] == [f"{name}.parquet"]
        assert not list((tmp_path / f"{name}-out").glob("*.parquet"))
        reason = summary.failed[0][1]
        assert ("row 1: no audio bytes, only a path (/elsewhere/b.wav)" in reason if name == "by-path"
                else "holds audio in column(s) a2 besides 'a1'" in reason)


def test_a_shard_ending_in_its_two_zero_blocks_without_padding_is_whole(tmp_path):
    """Python and GNU tar pad the end-of-archive blocks with zeros to a 10240-byte record; the
    two blocks alone are a whole tar too."""
    good = write_shard(tmp_path / "good.tar")
    with tarfile.open(good) as shard:
        shard.getmembers()
        end = shard.offset
    assert good.stat().st_size > end + 1024
    bare = tmp_path / "in" / "bare.tar"
    bare.parent.mkdir()
    bare.write_bytes(good.read_bytes()[:end + 1024])
    summary = protect_tree(tmp_path / "in", tmp_path / "out", KEY, containers=_options("webdataset"))
    assert not summary.failed and summary.protected == 6


def test_containers_on_dask_match_local(tmp_path):
    pytest.importorskip("distributed", reason="the dask executor needs the [dask] extra")
    for i in range(2):
        write_parquet(tmp_path / "in" / f"part-{i}.parquet", rows=10)  # 3 row groups: 3 tasks on Dask
    write_shard(tmp_path / "in" / "shards" / "a.tar")
    local = protect_tree(tmp_path / "in", tmp_path / "local", KEY, containers=_options("parquet"), jobs=2)
    remote = protect_tree(tmp_path / "in", tmp_path / "dask", KEY, containers=_options("parquet"), jobs=2,
                          executor="dask")
    assert local.protected == remote.protected == 20 and local.containers == remote.containers == 2
    assert remote.labels == local.labels == {"down": 8, "up": 6, "yes": 6}
    for name in ("part-0.parquet", "part-1.parquet"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    for summary in (local, remote):  # another format's container is never copied out unprotected
        assert [path for path, _ in summary.skipped] == ["shards/a.tar"]
    assert not (tmp_path / "dask" / "shards").exists() and not (tmp_path / "local" / "shards").exists()
    assert not [p for p in (tmp_path / "dask").rglob("*") if p.name.endswith(".poscuda-tmp")]


def test_containers_go_to_worker_processes_however_big_and_give_the_same_bytes(tmp_path, monkeypatch):
    import poscuda_cli.protect as protect

    for i in range(2):
        write_parquet(tmp_path / "in" / f"part-{i}.parquet", rows=6)
    write_shard(tmp_path / "shards" / "a.tar")
    monkeypatch.setattr(protect, "PROCESS_MEAN_BYTES", 1)  # every file counts as big
    asked, real = [], protect.executors.pool

    def recording(*args, **kwargs):
        asked.append(kwargs["processes"])
        return real(*args, **kwargs)

    monkeypatch.setattr(protect.executors, "pool", recording)
    threads_per_task, real_run = [], protect._run

    def counting(workers, batches, src, dst, key, threads, *rest):
        threads_per_task.append(threads)
        return real_run(workers, batches, src, dst, key, threads, *rest)

    monkeypatch.setattr(protect, "_run", counting)
    for fmt, src in (("parquet", tmp_path / "in"), ("webdataset", tmp_path / "shards")):
        threads = protect_tree(src, tmp_path / fmt / "threads", KEY, jobs=2, containers=_options(fmt))
        processes = protect_tree(src, tmp_path / fmt / "processes", KEY, jobs=2, processes=True,
                                 containers=_options(fmt))
        assert processes.protected == threads.protected > 0 and not processes.failed
        for path in (tmp_path / fmt / "threads").rglob("*.*"):
            if not path.name.startswith("."):
                twin = tmp_path / fmt / "processes" / path.relative_to(tmp_path / fmt / "threads")
                assert twin.read_bytes() == path.read_bytes()
    assert asked == [False, True, False, True]  # cells are small files: the GIL-bound kind
    # a container's cells run on 2 threads in the one process, and on 1 in each of 2 processes (not 2 x 2)
    assert threads_per_task == [2, 1, 2, 1]


def test_a_parquet_file_fanned_out_by_row_group_gives_the_same_bytes(tmp_path):
    from poscuda_cli.containers.parquet import protect_parquet

    src = write_parquet(tmp_path / "in.parquet", rows=10, broken=None)
    tasks = []

    def fan_out(fn, many):  # what executors.fan_out does on a Dask worker, here in order
        tasks.extend(args[-1] for args in many)
        return [fn(*args) for args in many]

    (tmp_path / "whole").mkdir()
    (tmp_path / "parts").mkdir()
    whole = protect_parquet(src, tmp_path / "whole" / "out.parquet", KEY, _options("parquet"))
    parts = protect_parquet(src, tmp_path / "parts" / "out.parquet", KEY, _options("parquet"), fan_out=fan_out)
    assert tasks == [0, 1, 2]
    assert (tmp_path / "parts" / "out.parquet").read_bytes() == (tmp_path / "whole" / "out.parquet").read_bytes()
    assert (parts.rows, parts.clips, parts.samples, parts.labels) == (whole.rows, whole.clips, whole.samples,
                                                                     whole.labels)
    assert whole.rows == whole.clips == 10
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["out.parquet"]  # the pieces are gone
    bad = write_parquet(tmp_path / "bad.parquet", rows=10, broken=5)
    failed = protect_parquet(bad, tmp_path / "parts" / "bad.parquet", KEY, _options("parquet"), fan_out=fan_out)
    assert [f.split(":")[0] for f in failed.failed] == ["row 5"]  # named by its row in the whole file
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["out.parquet"]


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    write_parquet(tmp_path / "in" / "a.parquet", rows=2)
    without_packages(monkeypatch, "pyarrow")
    result = CliRunner().invoke(main, ["protect", str(tmp_path / "in"), str(tmp_path / "out"), "--key",
                                       key_file(tmp_path)])
    assert result.exit_code == 6 and "pip install 'poscuda[formats]'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_column_that_is_not_audio_is_named(tmp_path):
    write_parquet(tmp_path / "in" / "a.parquet", rows=2)
    summary = protect_tree(tmp_path / "in", tmp_path / "out", KEY, containers=_options("parquet", audio_column="text"))
    assert summary.failed == [("a.parquet", "column 'text' holds no audio ({bytes, path} structs); columns: "
                                            "audio, label, text; choose with --audio-column")]


@pytest.mark.parametrize("first, second, named", [
    (["--format", "parquet"], ["--label-column", "text"], "--label-column (default), not 'text'"),
    (["--label-column", "text"], [], "--label-column 'text', not (default)"),
])
def test_a_parquet_rerun_with_other_options_is_refused_not_resumed(tmp_path, first, second, named):
    """A container's cells are protected under its rows' labels: a rerun that reads other labels (or
    other audio) must not keep the first run's cells as if they were its own."""
    src = write_parquet(tmp_path / "in" / "a.parquet", rows=4)
    protect = ["protect", str(src.parent), str(tmp_path / "out"), "--key", key_file(tmp_path), "-q"]
    assert CliRunner().invoke(main, protect + first).exit_code == 0
    before = (tmp_path / "out" / "a.parquet").read_bytes()
    rerun = CliRunner().invoke(main, protect + second)
    assert rerun.exit_code == 5 and named in rerun.stderr and "--force" in rerun.stderr
    assert (tmp_path / "out" / "a.parquet").read_bytes() == before
    forced = CliRunner().invoke(main, protect + second + ["--force", "--json"])
    assert forced.exit_code == 0 and json.loads(forced.stdout)["resumed"] == 0


def test_a_webdataset_rerun_with_another_label_member_is_refused(tmp_path):
    write_shard(tmp_path / "in" / "a.tar", label_member="json")
    protect = ["protect", str(tmp_path / "in"), str(tmp_path / "out"), "--key", key_file(tmp_path), "-q"]
    assert CliRunner().invoke(main, protect + ["--label-member", "json:label"]).exit_code == 0
    rerun = CliRunner().invoke(main, protect + ["--label-member", "json:id"])
    assert rerun.exit_code == 5 and "--label-member 'json:label', not 'json:id'" in rerun.stderr
