"""verify's perceptual metrics (PESQ, STOI, speaker similarity) and its HTML report: the [quality] extra."""

import json
import math
import re

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from poscuda_cli.cli import main

from conftest import speechlike, write_tree

pytest.importorskip("pesq", reason="perceptual metrics need the [quality] extra")
pytest.importorskip("pystoi", reason="perceptual metrics need the [quality] extra")
pytest.importorskip("resemblyzer", reason="speaker similarity needs the [quality] extra")
pytest.importorskip("matplotlib", reason="the report needs the [quality] extra")

from poscuda_cli.encoders import speaker  # noqa: E402
from poscuda_cli.verify import perceptual  # noqa: E402


def noisy(x, snr_db, seed=0):
    noise = np.random.default_rng(seed).standard_normal(len(x))
    return x + noise * np.sqrt(np.mean(x ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))


@pytest.mark.parametrize("rate, mode, top", [(8000, "nb", 4.5), (11025, "nb", 4.5), (16000, "wb", 4.64),
                                             (44100, "wb", 4.64)])
def test_pesq_mode_by_rate_and_ordering(rate, mode, top):
    x = speechlike(2.0, rate)[:, 0]
    same, used = perceptual.pesq_score(x, x, rate)
    assert used == mode and same == pytest.approx(top, abs=0.05)
    at20, at5 = perceptual.pesq_score(x, noisy(x, 20), rate)[0], perceptual.pesq_score(x, noisy(x, 5), rate)[0]
    assert same > at20 > at5 > 1.0
    if rate in CALIBRATED_AT_20_DB:  # measured once: a wrong mode or a broken resampling moves them
        assert at20 == pytest.approx(CALIBRATED_AT_20_DB[rate], abs=0.1)


# PESQ of speechlike(2 s) with white noise at 20 dB SNR (seed 0): narrow-band at 8 kHz, wide-band at 16 kHz
CALIBRATED_AT_20_DB = {8000: 4.22, 16000: 3.58}


def test_pesq_pads_short_clips_and_refuses_low_rates():
    short = speechlike(0.2, 8000)[:, 0]  # P.862 needs 0.25 s: padded with silence, both alike
    assert perceptual.pesq_score(short, short, 8000)[0] == pytest.approx(4.55, abs=0.05)
    assert perceptual.pesq_score(short, noisy(short, 20), 8000)[0] == pytest.approx(4.15, abs=0.1)  # measured once
    with pytest.raises(perceptual.NotMeasured, match="8 kHz or more"):
        perceptual.pesq_score(short, short, 4000)


def test_stoi_and_clips_too_short_for_it():
    x = speechlike(2.0, 16000)[:, 0]
    plain, extended = perceptual.stoi_scores(x, x, 16000)
    assert plain == pytest.approx(1.0, abs=1e-6) and extended == pytest.approx(1.0, abs=1e-6)
    degraded = perceptual.stoi_scores(x, noisy(x, -5), 16000)
    assert degraded[0] < 0.95 and degraded[1] < degraded[0]
    with pytest.raises(perceptual.NotMeasured, match="384 ms"):
        perceptual.stoi_scores(x[:3200], x[:3200], 16000)


def test_speaker_mel_frames_match_resemblyzer():
    from resemblyzer import audio

    wav = speechlike(1.3, 16000)[:, 0].astype(np.float32)
    np.testing.assert_allclose(speaker.mel_frames(wav), audio.wav_to_mel_spectrogram(wav), rtol=1e-5, atol=1e-9)


def test_speaker_similarity_orders_changes():
    x = speechlike(2.0, 16000, seed=1)[:, 0]
    other = speechlike(2.0, 16000, seed=5)[:, 0] ** 3  # another pitch and a harsher timbre
    embedded, partials = speaker.embed([(x, 16000), (x, 16000), (noisy(x, 30), 16000), (other, 16000)])
    assert embedded.shape == (4, 256) and partials[0].shape == (2, 256)  # 2 s: two 1.6 s partials
    assert speaker.similarity(embedded[0], embedded[1]) == pytest.approx(1.0, abs=1e-6)
    assert speaker.similarity(embedded[0], embedded[2]) > speaker.similarity(embedded[0], embedded[3])


def test_pretrained_encoder_tells_fsdd_speakers_apart(fsdd):
    """Real weights, not random ones: clips of one speaker are closer than clips of two."""
    from poscuda_cli.audio import mono_float

    clips = {name: [mono_float(str(fsdd / d / f"{d}_{name}_10.wav")) for d in "0123456"] for name in ("george", "jackson")}
    embedded = {name: speaker.embed([(m, info.samplerate) for m, info in clips[name]])[0] for name in clips}
    within = np.mean([embedded[n] @ embedded[n].T for n in embedded])
    between = np.mean(embedded["george"] @ embedded["jackson"].T)
    assert within > between + 0.1, (within, between)


TREE = {f"{lab}/{i}.wav": ("WAV", "PCM_16", 16000, 1, 1.0 + 0.25 * i) for lab in "ab" for i in range(3)}


def degrade(src, dst, snr_db):
    for path in sorted(src.rglob("*.wav")):
        x, rate = sf.read(path)
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, np.clip(noisy(x, snr_db, seed=len(x)), -1, 1), rate, subtype="PCM_16")
    return dst


def no_nan(text):
    def refuse(constant):
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


def test_verify_perceptual_json_csv_and_gates(tmp_path):
    a = write_tree(tmp_path / "a", TREE)
    b = degrade(a, tmp_path / "b", 25)
    base = ["verify", str(a), str(b), "--cache", "none", "-q", "--jobs", "2"]
    result = CliRunner().invoke(main, base + ["--perceptual", "all", "--json", "--csv", str(tmp_path / "q.csv")])
    assert result.exit_code == 0, result.output
    summary = no_nan(result.stdout)
    assert summary["pesq_mode"] == "wb" and summary["pesq_measured"] == 6
    # measured once on these six clips with white noise at 25 dB: PESQ-wb 4.13 (min 4.02), STOI 0.945,
    # speaker similarity 0.985 (min 0.970)
    assert summary["snr_db_mean"] == pytest.approx(25.0, abs=0.05)
    assert summary["pesq_mean"] == pytest.approx(4.13, abs=0.05) and summary["pesq_min"] == pytest.approx(4.02, abs=0.05)
    assert summary["stoi_mean"] == pytest.approx(0.945, abs=0.01) and summary["stoi_measured"] == 6
    assert summary["speaker_similarity_mean"] == pytest.approx(0.985, abs=0.01)
    assert summary["speaker_similarity_min"] == pytest.approx(0.970, abs=0.015)
    header, *rows = (tmp_path / "q.csv").read_text().splitlines()
    assert {"pesq", "stoi", "estoi", "speaker_similarity", "not_measured"} <= set(header.split(",")) and len(rows) == 6
    gated = CliRunner().invoke(main, base + ["--min-pesq", "4.6", "--min-speaker-sim", "0.5"])
    assert gated.exit_code == 7 and "--min-pesq" in gated.stderr and "--min-speaker-sim" not in gated.stderr
    assert "PESQ wb" in gated.stdout  # a gate turns its metric on
    assert CliRunner().invoke(main, base + ["--min-stoi", "0.3"]).exit_code == 0


def test_bad_pairs_are_named_the_rest_measured(tmp_path):
    good = {"x/ok.wav": ("WAV", "PCM_16", 16000, 1, 1.5), "x/short.wav": ("WAV", "PCM_16", 16000, 1, 0.2)}
    a = write_tree(tmp_path / "a", {**good, "x/stereo.wav": ("WAV", "PCM_16", 16000, 1, 1.0),
                                    "x/rate.wav": ("WAV", "PCM_16", 16000, 1, 1.0),
                                    "x/length.wav": ("WAV", "PCM_16", 16000, 1, 1.0),
                                    "x/gone.wav": ("WAV", "PCM_16", 16000, 1, 1.0)})
    b = write_tree(tmp_path / "b", {**good, "x/stereo.wav": ("WAV", "PCM_16", 16000, 2, 1.0),
                                    "x/rate.wav": ("WAV", "PCM_16", 8000, 1, 2.0),
                                    "x/length.wav": ("WAV", "PCM_16", 16000, 1, 1.1),
                                    "x/new.wav": ("WAV", "PCM_16", 16000, 1, 1.0)})
    for tree in (a, b):
        sf.write(tree / "x/silent.wav", np.zeros(16000), 16000, subtype="PCM_16")
    result = CliRunner().invoke(main, ["verify", str(a), str(b), "--perceptual", "all", "--json", "--cache", "none",
                                       "-q", "--report", str(tmp_path / "r.html")])
    assert result.exit_code == 1, result.output
    summary = no_nan(result.stdout)
    errors = {e["path"]: e["reason"] for e in summary["errors"]}
    assert set(errors) == {"x/stereo.wav", "x/rate.wav", "x/length.wav", "x/silent.wav"}
    assert "1 ch" in errors["x/stereo.wav"] and "2 ch" in errors["x/stereo.wav"]
    assert "8000 Hz" in errors["x/rate.wav"] and "silent" in errors["x/silent.wav"]
    assert summary["missing"] == ["x/gone.wav"] and summary["extra"] == ["x/new.wav"]
    assert summary["files"] == 2 and summary["pesq_measured"] == 2 and summary["stoi_measured"] == 1
    assert summary["not_measured"] == [{"path": "x/short.wav", "reason": "STOI: under 30 frames (384 ms) of speech"}]
    for problem in ("x/stereo.wav", "x/gone.wav", "x/new.wav", "x/silent.wav"):
        assert problem in result.stderr
    assert "x/short.wav" in (tmp_path / "r.html").read_text()


def test_report_is_one_self_contained_page(tmp_path):
    a = write_tree(tmp_path / "a", TREE)
    b = degrade(a, tmp_path / "b", 20)
    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["verify", str(a), str(b), "--report", str(page), "--cache", "none", "-q"])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "<table class=summary>" in text and "PESQ (wb)" in text and "speaker similarity" in text
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', text)) == 4  # histograms + 3 files
    assert len(re.findall(r'<audio controls preload=metadata src="data:audio/wav;base64,', text)) == 6
    assert "worst file by PESQ" in text and "best file by PESQ" in text
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing outside the file
    assert not list(tmp_path.glob("*.poscuda-tmp"))


def test_report_renders_in_chromium(tmp_path):
    """As a person would see it: headless Chromium shows the table, decodes every image and audio clip."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    a = write_tree(tmp_path / "a", TREE)
    b = degrade(a, tmp_path / "b", 20)
    page = tmp_path / "report.html"
    assert CliRunner().invoke(main, ["verify", str(a), str(b), "--report", str(page), "-q",
                                     "--cache", "none"]).exit_code == 0
    probe = tmp_path / "probe.html"  # the report plus a script that records what the browser made of it
    probe.write_text(page.read_text().replace("</body>", """<script>
      window.addEventListener('load', () => setTimeout(() => {
        const images = [...document.images].map(i => i.complete && i.naturalWidth > 100);
        const audio = [...document.querySelectorAll('audio')].map(a => a.readyState >= 1 && a.duration > 0);
        const rows = document.querySelectorAll('table.summary tr').length;
        document.body.setAttribute('data-check', JSON.stringify({images, audio, rows}));
      }, 1500));
    </script></body>"""))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run(flags + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    check = json.loads(re.search(r"data-check=\"([^\"]+)\"", dom).group(1).replace("&quot;", '"'))
    assert check["rows"] >= 8 and check["images"] == [True] * 4 and check["audio"] == [True] * 6, check
    shot = tmp_path / "shot.png"
    subprocess.run(flags + ["--window-size=1300,2200", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    pixels = _png_pixels(shot)
    # the spectrograms and histograms are in colour: 17% of the pixels on this page, measured; a blank
    # or error page, or one whose images failed to draw, has next to none
    saturated = (pixels[..., :3].max(axis=2) - pixels[..., :3].min(axis=2) > 60).mean()
    assert 0.08 < saturated < 0.4 and pixels.std() > 40, (saturated, pixels.std())


def _png_pixels(path):
    import matplotlib.image

    return np.asarray(matplotlib.image.imread(str(path))) * 255.0


def test_speaker_fad_is_zero_for_identical_trees(tmp_path):
    a = write_tree(tmp_path / "a", TREE)
    result = CliRunner().invoke(main, ["verify", str(a), str(a), "--embedding", "speaker", "--json", "-q",
                                       "--cache", "none"])
    assert result.exit_code == 0, result.output
    summary = no_nan(result.stdout)
    assert summary["embedding"] == "speaker" and math.isclose(summary["fad"], 0.0, abs_tol=1e-6)
    fads = [no_nan(CliRunner().invoke(main, ["verify", str(a), str(degrade(a, tmp_path / f"n{snr}", snr)),
                                             "--embedding", "speaker", "--json", "-q", "--cache", "none"]).stdout)["fad"]
            for snr in (25, 5)]
    assert 0.02 < fads[0] < 0.05 and 0.5 < fads[1] < 1.0, fads  # measured: 0.031 at 25 dB, 0.71 at 5 dB
