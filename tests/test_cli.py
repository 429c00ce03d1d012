import json
import os
import subprocess
import sys

from click.testing import CliRunner

from poscuda_cli import __version__
from poscuda_cli.cli import main

from conftest import write_tree


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_version_and_help():
    assert run("--version").output.strip().endswith(__version__)
    for command in ("keygen", "protect"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Examples:" in result.output


def test_python_dash_m():
    result = subprocess.run([sys.executable, "-m", "poscuda_cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout


def test_protect_json_on_stdout_logs_on_stderr(mixed_tree, tmp_path):
    key = tmp_path / "k.json"
    assert run("keygen", "-o", key).exit_code == 0
    result = run("protect", mixed_tree, tmp_path / "out", "--key", key, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["protected"] == 5 and summary["copied"] == 2 and summary["failed"] == 0
    assert "protected 5" in result.stderr
    secret = json.loads(key.read_text())["secret"]
    assert secret not in result.stdout + result.stderr


def test_exit_codes(tmp_path):
    src = write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.1), "a/bad.wav": b"nope"})
    key, other = tmp_path / "k.json", tmp_path / "o.json"
    run("keygen", "-o", key)
    run("keygen", "-o", other)
    result = run("protect", src, tmp_path / "out", "--key", key, "-q")
    assert result.exit_code == 1 and "a/bad.wav" in result.stderr and result.stdout == ""
    assert run("protect", src, src / "out", "--key", key).exit_code == 4
    assert run("protect", src, tmp_path / "out", "--key", other).exit_code == 5
    (tmp_path / "broken.json").write_text("{}")
    result = run("protect", src, tmp_path / "out2", "--key", tmp_path / "broken.json")
    assert result.exit_code == 3 and "missing field" in result.stderr
    assert run("protect", src, tmp_path / "out3").exit_code == 2  # --key is required


def test_the_stated_python_is_the_one_the_code_needs():
    """protect removes stale temporaries with glob(include_hidden=True), new in Python 3.11: setup.cfg
    and README must not promise less."""
    import configparser
    import re

    here = os.path.join(os.path.dirname(__file__), "..")
    config = configparser.ConfigParser()
    config.read(os.path.join(here, "setup.cfg"))
    assert config["options"]["python_requires"].strip() == ">=3.11"
    with open(os.path.join(here, "README.md"), encoding="utf-8") as handle:
        assert re.findall(r"Python ≥ (3\.\d+)", handle.read()) == ["3.11"]


def test_an_option_of_another_format_is_a_usage_error(tmp_path):
    """--label-member on Parquet or a tree, --audio-column on shards or a tree: refused, not ignored."""
    write_tree(tmp_path / "in", {"a/x.wav": ("WAV", "PCM_16", 8000, 1, 0.2)})
    for option in (["--label-member", "json:label"], ["--audio-column", "audio"]):
        result = CliRunner().invoke(main, ["protect", str(tmp_path / "in"), str(tmp_path / "out"), "--key",
                                           "k.json"] + option)
        assert result.exit_code == 2 and f"{option[0]} goes with" in result.output
    assert not (tmp_path / "out").exists()
