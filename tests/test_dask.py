"""protect and verify on a Dask LocalCluster (2 worker processes): same bytes, same numbers."""

import json

import pytest
from click.testing import CliRunner

from poscuda_cli.cli import main
from poscuda_cli.key import Key, write_key
from poscuda_cli.signature.params import Params
from poscuda_cli.protect import protect_tree
from poscuda_cli.verify import verify_trees

from conftest import MIXED_TREE, without_packages, write_tree
from test_protect import tree_bytes

pytest.importorskip("distributed", reason="the dask executor needs the [dask] extra")


def test_dask_matches_local(tmp_path, key):
    src = write_tree(tmp_path / "in", {**MIXED_TREE, "no/bad.wav": b"not audio"})
    local = protect_tree(src, tmp_path / "local", key, jobs=2)
    remote = protect_tree(src, tmp_path / "dask", key, jobs=2, executor="dask")
    assert tree_bytes(tmp_path / "dask") == tree_bytes(tmp_path / "local")
    assert remote.failed == local.failed == [("no/bad.wav", remote.failed[0][1])]
    assert (remote.protected, remote.copied) == (local.protected, local.copied)
    assert verify_trees(src, tmp_path / "dask", executor="dask", jobs=2).fad == \
        pytest.approx(verify_trees(src, tmp_path / "local").fad, rel=1e-12)


def test_dask_tasks_carry_batches_of_files(tmp_path, key, monkeypatch):
    import poscuda_cli.executors as executors

    src = write_tree(tmp_path / "in", {f"a/{i}.wav": ("WAV", "PCM_16", 8000, 1, 0.2) for i in range(40)})
    sent = []
    real = executors.batches

    def recording(items, sizes, batch_bytes):
        for batch in real(items, sizes, batch_bytes):
            sent.append(len(batch))
            yield batch

    monkeypatch.setattr(executors, "DASK_BATCH_BYTES", 20_000)  # about six 3.2 kB files
    monkeypatch.setattr(executors, "batches", recording)
    summary = protect_tree(src, tmp_path / "dask", key, jobs=2, executor="dask")
    assert summary.protected == 40 and sent == [7, 7, 7, 7, 7, 5]  # 40 files in tasks of about 20 kB
    protect_tree(src, tmp_path / "local", key, jobs=1)
    assert tree_bytes(tmp_path / "dask") == tree_bytes(tmp_path / "local")


def test_batches_group_by_bytes():
    from poscuda_cli.executors import batches

    assert list(batches("abcdef", [5, 5, 5, 20, 1, 1], 10)) == [["a", "b"], ["c", "d"], ["e", "f"]]
    assert list(batches("abc", [1, 1, 1], 1)) == [["a"], ["b"], ["c"]]
    assert list(batches([], [], 10)) == []


def test_dask_cli_on_fsdd(fsdd, tmp_path):
    key_path = tmp_path / "k.json"
    write_key(Key(bytes(range(32)), Params()), key_path)
    runner = CliRunner()
    result = runner.invoke(main, ["protect", str(fsdd), str(tmp_path / "dask"), "--key", str(key_path),
                                  "--executor", "dask", "--jobs", "2", "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["protected"] == 3000
    result = runner.invoke(main, ["protect", str(fsdd), str(tmp_path / "local"), "--key", str(key_path),
                                  "--jobs", "2", "-q"])
    assert result.exit_code == 0
    assert tree_bytes(tmp_path / "dask") == tree_bytes(tmp_path / "local")


def test_without_dask_says_how_to_install(tmp_path, key, monkeypatch):
    without_packages(monkeypatch, "distributed")
    src = write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.1)})
    key_path = tmp_path / "k.json"
    write_key(key, key_path)
    result = CliRunner().invoke(main, ["protect", str(src), str(tmp_path / "out"), "--key", str(key_path),
                                       "--executor", "dask"])
    assert result.exit_code == 6 and "pip install 'poscuda[dask]'" in result.stderr


def _nested():
    from poscuda_cli import executors

    run = executors.fan_out()
    return run(pow, [(2, 3), (3, 2), (5, 1)]) if run else None


def test_fan_out_runs_tasks_from_a_task_even_on_one_single_threaded_worker():
    """What spreads a Parquet file's row groups over a cluster: the task that launches them steps
    out of its worker's only slot while it waits, so one worker with one thread does not deadlock."""
    from poscuda_cli import executors

    assert executors.fan_out() is None  # not on a Dask worker
    with executors.pool("dask", jobs=1) as workers:
        assert workers.submit(_nested).result(timeout=60) == [8, 9, 5]
