"""Keys written by every released poscuda protect as they did then.

tests/data/keys/ holds keys written by the old code itself (not re-derived): v0.1.0 (commit
c4f267c, key format 1), v0.2.0-early (88afcfa: format 1 without ``notch_spacing``), v0.2.0
(format 1 with every field) and v0.2.0-fitted (format 2). Each protected the clips below with
its own version's ``poscuda protect``; the SHA-256 of those output files are pinned here.
"""

import hashlib
import json
import os

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from poscuda_cli.cli import main
from poscuda_cli.errors import KeyFileError
from poscuda_cli.key import VERSION, generate_key, key_from_dict, load_key
from poscuda_cli.protect import protect_tree

KEYS = os.path.join(os.path.dirname(__file__), "data", "keys")

# file -> SHA-256 of what that version's own `poscuda protect` wrote
PINNED = {
    "v0.1.0": {
        "0/clip16000.wav": "773f7b7acf84be1e4b82465b6d0132a7a19f1112a9ca33164b25d9ff78a08b12",
        "0/clip8000.wav": "7cfe8a0c63700521f92a8a265472791f1fb508f12b5dc757e39c5d3746bd76a3",
        "yes/clip16000.wav": "ff9201183cf7b555524e5c26156e139dd55a1bd6fd2cd5360e355789fe1740b3",
        "yes/clip8000.wav": "148d744145f500b5e67ae01d7748467fa406a829cfc86385cd0d8bec562db879",
    },
    "v0.2.0-early": {
        "0/clip16000.wav": "59c7ddcecd7518d14ffb2b0482fe8be842498e61e3fe7e0a0a152202f0cf7aab",
        "0/clip8000.wav": "4ff5d27ee0bd5acf5ef52981398b64df347932d21343b504850f659feb27e642",
        "yes/clip16000.wav": "b4dd837799133880166c62022052bfce77c32825bed854d0d30002a29b21c483",
        "yes/clip8000.wav": "5507b4110434fcd796747aa99afe6173ce43e0fd15d6758390b0693fba2904f6",
    },
    "v0.2.0": {
        "0/clip16000.wav": "0f076031aa7828aef735835f4684cc978bf003b594099b6eb52f399b8c301de3",
        "0/clip8000.wav": "55cef46d721ef8490a4480d69eb6019699b79b5f5124965adba9cd0a8534f8bd",
        "yes/clip16000.wav": "b97a92015b64b16ef2625d6b4e37ca9f57830ca59aa083c44994942dfc13ee6e",
        "yes/clip8000.wav": "379fdd3df525adc659113ce8ac6de763b900aa517ad79277c80c2e9217a6b4b1",
    },
    "v0.2.0-fitted": {
        "0/clip16000.wav": "2f3e9bfeee95bb1c253cc7e97353c694730d0616793c772df5a9936036469cf1",
        "0/clip8000.wav": "dbf89106a27621e5f94063d1ee83a21249bc1e34e7dca992938ef5ddf13a7c33",
        "yes/clip16000.wav": "b525c9e632eddf18eb429ebaaf6fe2c1904e1a448c240b6240964f696e1bfd97",
        "yes/clip8000.wav": "9a59eb0f736086e33b3a36b734139274146d3fe94cc9f9c41d6d555029df7f54",
    },
}


def _fixture_tree(root):
    """The clips the old versions protected: 1 s of a chirp plus noise at 8 and 16 kHz, PCM_16."""
    for rate in (8000, 16000):
        t = np.arange(rate) / rate
        x = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.05 * np.random.default_rng(rate).standard_normal(rate)
        for label in ("0", "yes"):
            os.makedirs(root / label, exist_ok=True)
            sf.write(str(root / label / f"clip{rate}.wav"), x, rate, subtype="PCM_16")
    return root


@pytest.mark.parametrize("version", sorted(PINNED))
def test_a_released_key_protects_as_its_version_did(tmp_path, version):
    key = load_key(os.path.join(KEYS, f"{version}.json"))
    summary = protect_tree(str(_fixture_tree(tmp_path / "in")), str(tmp_path / "out"), key, jobs=1)
    assert summary.protected == 4 and not summary.failed
    got = {rel: hashlib.sha256((tmp_path / "out" / rel).read_bytes()).hexdigest() for rel in PINNED[version]}
    assert got == PINNED[version]


def test_an_old_key_without_notch_spacing_keeps_hz_spacing():
    """The field came in 0.2 with "hz" (0.1's only spacing); the default level is "mel" now."""
    for version in ("v0.1.0", "v0.2.0-early"):
        with open(os.path.join(KEYS, f"{version}.json")) as handle:
            assert "notch_spacing" not in json.load(handle)["params"]
        assert load_key(os.path.join(KEYS, f"{version}.json")).params.notch_spacing == "hz"


def test_new_keys_are_written_in_the_current_format_and_list_every_parameter():
    body = json.loads(generate_key().to_json())
    assert body["version"] == VERSION == 3
    del body["params"]["notch_spacing"]
    with pytest.raises(KeyFileError, match="lacks parameter.*notch_spacing"):
        key_from_dict(body)


def test_a_key_from_a_newer_poscuda_is_refused_with_exit_3(tmp_path):
    body = {**json.loads(generate_key().to_json()), "version": VERSION + 1}  # the version is checked first
    path = tmp_path / "k.json"
    path.write_text(json.dumps(body))
    (tmp_path / "in" / "a").mkdir(parents=True)
    result = CliRunner().invoke(main, ["protect", str(tmp_path / "in"), str(tmp_path / "out"), "--key", str(path)])
    assert result.exit_code == 3
    assert f"key format {VERSION + 1} was written by a newer poscuda" in result.output
    assert not (tmp_path / "out").exists()


def test_an_old_format_1_key_with_a_fitted_section_is_refused():
    body = json.loads(open(os.path.join(KEYS, "v0.2.0-fitted.json")).read())
    body["version"] = 1
    with pytest.raises(KeyFileError, match="'fitted' goes with version 2"):
        key_from_dict(body)


def test_the_version_is_the_changelogs_newest_entry():
    """Output bytes change only with the version (the manifest refuses to resume across it), and the
    changelog says what changed in each."""
    from poscuda_cli import __version__

    with open(os.path.join(os.path.dirname(__file__), "..", "CHANGELOG.md"), encoding="utf-8") as handle:
        versions = [line[3:].strip() for line in handle if line.startswith("## ")]
    assert versions[0] == __version__
