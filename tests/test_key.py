import json
import os
import stat

import numpy as np
import pytest
from click.testing import CliRunner

from poscuda_cli.signature import filters
from poscuda_cli.api import protect_array
from poscuda_cli.cli import main
from poscuda_cli.errors import KeyFileError
from poscuda_cli.key import Key, generate_key, key_from_dict, load_key, write_key
from poscuda_cli.signature.params import PRESETS, STRENGTHS, Params
from poscuda_cli.verify.metrics import snr_db

from conftest import speechlike


def test_derivation_is_deterministic_and_per_label(key):
    same = Key(key.secret, key.params)
    assert key.label_plan("yes") == same.label_plan("yes")
    assert key.label_plan("yes") != key.label_plan("no")
    other = generate_key()
    assert other.label_plan("yes") != key.label_plan("yes")


def test_label_material_does_not_depend_on_other_labels(key):
    # derive "b" alone, then after many other labels: the same plan
    fresh = Key(bytes(key.secret), key.params)
    alone = fresh.label_plan("b")
    for label in map(str, range(50)):
        key.label_plan(label)
    assert key.label_plan("b") == alone


def test_lowpass_taps_are_non_negative_and_sum_to_one():
    key = generate_key(PRESETS["paper"])
    for label in "abcdefgh":
        taps = filters.design(key.label_plan(label).filter, 8000)
        assert len(taps) == 9 and (taps >= 0).all()
        assert taps.sum() == pytest.approx(1.0)


def test_bandstop_taps_remove_their_notches():
    key = generate_key(Params(notches=2, notch_width_hz=200, notch_spacing="hz", notch_high_hz=3800))
    spec = key.label_plan("x").filter
    for rate in (8000, 16000, 44100):
        taps = filters.design(spec, rate)
        assert len(taps) % 2 == 1 and np.allclose(taps, taps[::-1])  # linear phase, zero delay
        response = np.abs(np.fft.rfft(taps, 1 << 16))
        freqs = np.fft.rfftfreq(1 << 16, 1 / rate)
        for centre, width in filters.notch_bands(spec, rate):
            assert width == 200 and response[np.argmin(np.abs(freqs - centre))] < 0.1
        assert response[np.argmin(np.abs(freqs - 150))] == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("numtaps, low, high, rate", [(257, 1200, 1450, 8000), (513, 180, 300, 16000),
                                                      (1537, 5000, 7600, 48000), (3, 20, 3900, 8000)])
def test_bandpass_design_is_scipys_firwin(numtaps, low, high, rate):
    """protect designs its notches without importing scipy.signal; the taps are firwin's."""
    from scipy.signal import firwin

    expected = firwin(numtaps, [low, high], pass_zero=False, fs=rate)
    np.testing.assert_allclose(filters.bandpass_taps(numtaps, low, high, rate), expected, rtol=0, atol=1e-14)


def test_mel_spacing_follows_the_sample_rate():
    """Mel-spaced notches reach 0.95 x Nyquist at every rate, each a fixed width in mel."""
    key = Key(bytes(range(32)), Params(notches=6, notch_spacing="mel", notch_low_hz=1000, notch_high_hz=20000,
                                       notch_width_hz=300))
    spec = key.label_plan("x").filter
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    for rate in (8000, 16000, 48000):
        bands = filters.notch_bands(spec, rate)
        assert len(bands) == 6 and all(1000 <= c <= 0.95 * rate / 2 for c, _ in bands)
        widths_in_mel = [mel(c + w / 2) - mel(c - w / 2) for c, w in bands]
        assert max(widths_in_mel) < 1.1 * min(widths_in_mel)  # the same width in mel ...
        assert abs(widths_in_mel[0] - (mel(1150) - mel(850))) < 0.2 * widths_in_mel[0]  # ... as 300 Hz at 1 kHz
        taps = filters.design(spec, rate)
        response = np.abs(np.fft.rfft(taps, 1 << 16))
        freqs = np.fft.rfftfreq(1 << 16, 1 / rate)
        assert all(response[np.argmin(np.abs(freqs - c))] < 0.1 for c, _ in bands)
    spread = [c for c, _ in filters.notch_bands(spec, 48000)]
    assert max(spread) > 8000  # on a 48 kHz file the notches reach far above what 8 kHz audio has


def test_low_notches_and_echoes_are_drawn_after_the_layout():
    """Adding them leaves a key's high notches and layout as they were; they show in the response."""
    secret = bytes(range(32))
    plain = Key(secret, Params(layout="tile")).label_plan("x")
    fuller = Key(secret, Params(layout="tile", low_notches=2, low_notch_width_hz=120, echoes=1, echo_gain=0.6,
                                echo_min_ms=2.0, echo_max_ms=4.0)).label_plan("x")
    assert fuller.layout == plain.layout and set(plain.filter.values) < set(fuller.filter.values)
    lows = sorted(notch.band(8000) for notch in set(fuller.filter.values) - set(plain.filter.values))
    assert len(lows) == 2 and all(200 <= c <= 1000 and w == 120 for c, w in lows)
    ((delay, gain),) = fuller.filter.echoes
    assert 0.002 <= delay <= 0.004 and gain == 0.6
    taps = filters.design(fuller.filter, 8000)
    shift = round(delay * 8000)
    assert len(taps) == len(filters.design(plain.filter, 8000)) + 2 * shift
    response = np.abs(np.fft.rfft(taps, 1 << 16))
    freqs = np.fft.rfftfreq(1 << 16, 1 / 8000)
    comb = np.abs(1 + gain * np.exp(-2j * np.pi * freqs * shift / 8000))
    for centre, _ in lows:
        assert response[np.argmin(np.abs(freqs - centre))] < 0.1 * comb[np.argmin(np.abs(freqs - centre))] + 1e-3
    clean = (freqs > 100) & (freqs < 180)  # no notch there: only the comb's ripple
    np.testing.assert_allclose(response[clean], comb[clean], rtol=0.05)


def test_key_file_roundtrip_mode_and_no_overwrite(tmp_path, key):
    path = tmp_path / "k.json"
    write_key(key, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(path) == key
    with pytest.raises(KeyFileError, match="already exists"):
        write_key(key, path)
    write_key(generate_key(), path, force=True)
    assert load_key(path) != key


def test_fingerprint_is_public_and_stable(key):
    assert len(key.fingerprint) == 16
    assert key.secret.hex()[:16] not in key.fingerprint
    assert Key(key.secret, key.params).fingerprint == key.fingerprint
    assert Key(key.secret, Params(patches=5)).fingerprint != key.fingerprint


def body_of(key):
    return json.loads(key.to_json())


@pytest.mark.parametrize("edit, message", [
    (lambda b: b.pop("secret"), "missing field 'secret'"),
    (lambda b: b.update(format="other"), "field 'format'"),
    (lambda b: b.update(version=0), "field 'version'"),
    (lambda b: b.update(version="3"), "field 'version'"),
    (lambda b: b.update(secret="zz" * 32), "field 'secret'"),
    (lambda b: b.update(secret="ab" * 8), "field 'secret'"),
    (lambda b: b["params"].update(notches=0), "'notches'"),
    (lambda b: b["params"].update(layout="spiral"), "'layout'"),
    (lambda b: b["params"].update(taps="nine"), "'taps'"),
    (lambda b: b["params"].update(depth=float("nan")), "'depth'"),
    (lambda b: b["params"].update(colour="red"), "unknown parameter"),
    (lambda b: b["params"].update(notches=3), "checksum"),
    (lambda b: b.update(secret="00" * 32), "checksum"),
])
def test_bad_keys_are_rejected_naming_the_field(key, edit, message):
    body = body_of(key)
    edit(body)
    with pytest.raises(KeyFileError, match=message):
        key_from_dict(body)


@pytest.mark.parametrize("content", [b"", b"{", b"[1, 2]", b"\xff\xfe"])
def test_malformed_key_files(tmp_path, content):
    path = tmp_path / "k.json"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match="k.json"):
        load_key(path)


def test_readable_key_warns(tmp_path, key):
    path = tmp_path / "k.json"
    write_key(key, path)
    os.chmod(path, 0o644)
    warnings = []
    load_key(path, warn=warnings.append)
    assert warnings and "readable by other users" in warnings[0]


def test_keygen_cli_stdout_params_and_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["keygen", "-o", "-", "--preset", "paper", "--param", "patches=8"])
    assert result.exit_code == 0
    key = key_from_dict(json.loads(result.stdout))
    assert key.params.filter == "lowpass" and key.params.patches == 8
    result = runner.invoke(main, ["keygen", "-o", str(tmp_path / "k.json"), "--param", "patches=0"])
    assert result.exit_code == 3 and "'patches'" in result.stderr
    assert not (tmp_path / "k.json").exists()


def test_keygen_strength_levels(tmp_path):
    """--strength picks a level's parameters (balanced by default), --param adjusts one, and the
    levels are ordered: on the same speech, gentle changes it least and strong most."""
    runner = CliRunner()

    def keygen(*args):
        result = runner.invoke(main, ["keygen", "-o", "-", *args])
        assert result.exit_code == 0, result.output
        return key_from_dict(json.loads(result.stdout))

    assert keygen().params == STRENGTHS["balanced"]
    levels = {name: keygen("--strength", name) for name in ("gentle", "balanced", "strong")}
    assert all(levels[name].params == STRENGTHS[name] for name in levels)
    assert keygen("--strength", "strong", "--param", "echo_gain=0.2").params.echo_gain == 0.2
    both = runner.invoke(main, ["keygen", "-o", "-", "--strength", "strong", "--preset", "paper"])
    assert both.exit_code == 2 and "not both" in both.output
    help_text = runner.invoke(main, ["keygen", "--help"]).output
    assert all(f"{name}  " in help_text for name in levels)
    clip = speechlike(1.0, 16000)[:, 0]
    snr = {name: np.mean([snr_db(clip, protect_array(clip, 16000, label, key)) for label in "abcd"])
           for name, key in levels.items()}
    assert snr["gentle"] > snr["balanced"] + 5 > snr["strong"] + 10, snr


def test_the_dataclass_defaults_are_the_default_level():
    """Params(), generate_key() and the API's and CLI's default key are all `balanced`: tests that use
    the `key` fixture exercise the filter users get."""
    from poscuda_cli import api
    from poscuda_cli.signature.params import STRENGTHS

    assert Params() == STRENGTHS["balanced"]
    assert generate_key().params == api.keygen().params == STRENGTHS["balanced"]
    written = CliRunner().invoke(main, ["keygen"])
    assert written.exit_code == 0 and Params.from_dict(json.loads(written.stdout)["params"]) == STRENGTHS["balanced"]
