"""keygen --fit: learned per-label gain curves, their key file, their quality budget."""

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from poscuda_cli.signature import filters
from poscuda_cli.cli import main
from poscuda_cli.key import load_key
from poscuda_cli.protect import protect_tree

from conftest import speechlike

torch = pytest.importorskip("torch", reason="keygen --fit needs the [audit] extra (torch)")
from poscuda_cli.audit import fit  # noqa: E402


@pytest.mark.parametrize("rate", [8000, 16000])
def test_torch_curve_taps_are_the_designed_taps(rate):
    curves = fit.CurveFilters(["a", "b", "c"], rate, 32.0, seed=1)
    with torch.no_grad():
        curves.gains_db.mul_(6.0)
    taps = curves.taps().detach().numpy()
    for i in range(3):
        spec = filters.FilterSpec("curve", tuple(curves.gains_db[i].tolist()), filter_ms=32.0,
                                  anchors_hz=curves.anchors)
        np.testing.assert_allclose(filters.design(spec, rate), taps[i], atol=1e-12)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_distortion_and_budget_match_real_filtering(seed):
    """The spectral estimate of distortion agrees with filtering the clip (measured: within 4-11%), and
    keep_within holds the clip's real distortion, not just the estimate, to the budget (within 3%)."""
    clip = speechlike(1.0, 8000, seed=seed)[:, 0]
    curves = fit.CurveFilters(["a"], 8000, 32.0, seed=2)
    with torch.no_grad():
        curves.gains_db.mul_(10.0)
    spectra = fit.label_spectra([clip], [0], 1)

    def measured():
        filtered = np.convolve(clip, curves.taps().detach()[0].numpy(), mode="same")
        return np.sum((filtered - clip) ** 2) / np.sum(clip ** 2)

    predicted = float(fit.distortion(curves.taps().detach(), spectra)[0])
    assert predicted == pytest.approx(measured(), rel=0.12)
    budget = predicted / 10  # ask for 10 dB less distortion
    curves.keep_within(spectra, budget)
    assert float(fit.distortion(curves.taps().detach(), spectra)[0]) == pytest.approx(budget, rel=0.01)
    assert measured() == pytest.approx(budget, rel=0.05)


def tone_classes(root, per_label=24):
    """Three labels of voiced, speech-like clips at different pitches."""
    for n, label in enumerate(("low", "mid", "high")):
        for i in range(per_label):
            x = speechlike(0.5, 8000, seed=100 * n + i)[:, 0]
            x = np.interp(np.arange(len(x)) * (1 + 0.4 * n), np.arange(len(x)), x)
            path = root / label / f"{label}_{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, x * 0.5, 8000, subtype="PCM_16")
    return root


def test_keygen_fit_writes_a_checked_key_that_protect_uses(tmp_path):
    src = tone_classes(tmp_path / "in")
    result = CliRunner().invoke(main, ["keygen", "-o", str(tmp_path / "k.json"), "--fit", str(src),
                                       "--fit-stages", "1", "--param", "fit_snr_db=20"])
    assert result.exit_code == 0, result.output
    assert "fitted 3 label filters" in result.stderr
    body = json.loads((tmp_path / "k.json").read_text())
    assert body["version"] == 3 and sorted(body["fitted"]["gains_db"]) == ["high", "low", "mid"]
    key = load_key(tmp_path / "k.json")
    assert key.label_plan("mid").filter.family == "curve"
    assert key.label_plan("unseen").filter.family == "bandstop"  # labels not fitted keep the drawn filter
    summary = protect_tree(src, tmp_path / "out", key)
    assert summary.protected == 72 and not summary.failed
    snrs = []
    for path in sorted(src.rglob("*.wav")):
        x = sf.read(path)[0]
        y = sf.read(tmp_path / "out" / path.relative_to(src))[0]
        snrs.append(10 * np.log10(np.sum(x ** 2) / np.sum((y - x) ** 2)))
    assert np.mean(snrs) > 18.0  # the 20 dB budget, up to the spectrum estimate and PCM rounding
    body["fitted"]["gains_db"]["mid"][0] += 1.0
    (tmp_path / "k.json").write_text(json.dumps(body))
    result = CliRunner().invoke(main, ["protect", str(src), str(tmp_path / "o2"), "--key", str(tmp_path / "k.json")])
    assert result.exit_code == 3 and "checksum" in result.stderr


def test_fitted_curve_works_at_other_rates():
    anchors = filters.curve_anchors(8000)
    gains = tuple(-20.0 if 900 < f < 1100 else 0.0 for f in anchors)
    spec = filters.FilterSpec("curve", gains, filter_ms=32.0, anchors_hz=anchors)
    for rate in (8000, 16000, 44100):
        taps = filters.design(spec, rate)
        response = np.abs(np.fft.rfft(taps, 8192))
        freqs = np.fft.rfftfreq(8192, 1 / rate)
        assert response[np.argmin(np.abs(freqs - 1000))] < 0.3  # the learned dip is kept ...
        assert 0.9 < response[np.argmin(np.abs(freqs - 3000))] < 1.1  # ... the rest passes
        if rate > 8000:
            assert 0.9 < response[np.argmin(np.abs(freqs - 6000))] < 1.1  # 0 dB above the fitted band
