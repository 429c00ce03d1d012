import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from poscuda_cli.verify import metrics
from poscuda_cli.cli import main
from poscuda_cli.verify.embeddings import Cache, MfccEmbedding
from poscuda_cli.protect import protect_tree
from poscuda_cli.verify import verify_trees

from conftest import speechlike, without_packages, write_tree

TREE = {f"{lab}/{i}.wav": ("WAV", "PCM_16", 8000, 1, 0.4 + 0.1 * i) for lab in "ab" for i in range(4)}


def test_metrics_on_known_signals():
    x = speechlike(0.5)[:, 0]
    assert metrics.snr_db(x, x) == float("inf")
    assert metrics.snr_db(x, x * 1.1) == pytest.approx(20.0, abs=1e-9)
    assert metrics.peak_change_db(x, x * 0.5) == pytest.approx(-6.0206, abs=1e-3)
    assert metrics.changed_fraction(x, np.where(np.arange(len(x)) < 100, 0, x)) == pytest.approx(100 / len(x))
    assert metrics.log_spectral_distance(x, x, 8000) == 0.0
    assert metrics.log_spectral_distance(x, x * 10, 8000) == pytest.approx(20.0, abs=1e-4)
    noise = np.random.default_rng(0).standard_normal(len(x))
    noise *= np.sqrt(np.mean(x ** 2) / np.mean(noise ** 2) / 10 ** (12.5 / 10))  # exactly 12.5 dB below the clip
    assert metrics.snr_db(x, x + noise) == pytest.approx(12.5, abs=0.1)


def test_identical_trees_have_zero_fad_and_changed_ones_the_embeddings_frechet_distance(tmp_path):
    from poscuda_cli.audio import mono_float
    from poscuda_cli.verify.frechet import frechet_distance, gaussian

    a = write_tree(tmp_path / "a", TREE)
    b = write_tree(tmp_path / "b", TREE)
    report = verify_trees(a, b)
    assert report.fad == pytest.approx(0.0, abs=1e-6) and len(report.files) == 8
    assert report.summary()["unchanged_files"] == 8
    for path in sorted(b.rglob("*.wav")):  # a gentle low-pass: every clip changes a little
        x, rate = sf.read(path)
        sf.write(path, np.convolve(x, [0.25, 0.5, 0.25], mode="same"), rate, subtype="PCM_16")

    def vectors(root):
        return np.concatenate([MfccEmbedding()(*mono_float(str(p))[:1], 8000) for p in sorted(root.rglob("*.wav"))])

    expected = frechet_distance(*gaussian(vectors(a)), *gaussian(vectors(b)))
    assert expected > 1.0 and verify_trees(a, b).fad == pytest.approx(expected, rel=1e-6)


def test_fsdd_sanity_fad_ordering(fsdd, tmp_path):
    """FAD(orig, orig) = 0; protection with the default key is far below 20 dB white noise and a 1 kHz low-pass."""
    import shutil

    from scipy.signal import butter, sosfiltfilt

    from poscuda_cli.key import Key
    from poscuda_cli.signature.params import STRENGTHS

    orig = tmp_path / "orig"
    for path in sorted(fsdd.rglob("*.wav"))[::10]:
        (orig / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, orig / path.parent.name / path.name)
    for level in ("gentle", "balanced"):
        protect_tree(orig, tmp_path / level, Key(bytes(range(32)), STRENGTHS[level]))
    rng = np.random.default_rng(0)
    low_pass = butter(8, 1000, fs=8000, output="sos")
    for name, change in (("noise", lambda x: x + rng.standard_normal(len(x)) * np.sqrt(np.mean(x ** 2) / 100)),
                         ("lowpass", lambda x: sosfiltfilt(low_pass, x))):
        for path in orig.rglob("*.wav"):
            x, rate = sf.read(path)
            out = tmp_path / name / path.relative_to(orig)
            out.parent.mkdir(parents=True, exist_ok=True)
            sf.write(out, np.clip(change(x), -1, 1), rate, subtype="PCM_16")
    assert verify_trees(orig, orig).fad == pytest.approx(0.0, abs=1e-6)
    fad = {name: verify_trees(orig, tmp_path / name).fad for name in ("gentle", "balanced", "noise", "lowpass")}
    # measured: gentle 2.0, balanced 118, 20 dB white noise 113, an 8th-order 1 kHz low-pass 725
    assert 0 < 20 * fad["gentle"] < fad["noise"] and fad["noise"] / 2 < fad["balanced"] < 2 * fad["noise"], fad
    assert 4 * fad["balanced"] < fad["lowpass"], fad


def test_missing_extra_and_gates_via_cli(tmp_path):
    a = write_tree(tmp_path / "a", TREE)
    b = write_tree(tmp_path / "b", {**{k: v for k, v in TREE.items() if k != "a/0.wav"},
                                    "b/new.wav": ("WAV", "PCM_16", 8000, 1, 0.3)})
    runner = CliRunner()
    result = runner.invoke(main, ["verify", str(a), str(b), "--json", "--cache", "none", "-q"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["missing"] == ["a/0.wav"] and summary["extra"] == ["b/new.wav"]
    same = write_tree(tmp_path / "same", TREE)
    csv_path = tmp_path / "q.csv"
    assert runner.invoke(main, ["verify", str(a), str(same), "--max-fad", "0.001", "--csv", str(csv_path),
                                "--cache", "none"]).exit_code == 0
    assert len(csv_path.read_text().splitlines()) == 1 + 8
    louder = tmp_path / "louder"
    for rel in TREE:
        x, rate = sf.read(a / rel)
        (louder / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(louder / rel, x * 1.1, rate, subtype="PCM_16")
    result = runner.invoke(main, ["verify", str(a), str(louder), "--min-snr", "25", "--cache", "none"])
    assert result.exit_code == 7 and "--min-snr" in result.stderr


def test_embedding_cache_reuses_by_content(tmp_path):
    src = write_tree(tmp_path / "a", {"x/1.wav": ("WAV", "PCM_16", 8000, 1, 0.3)})
    calls = []

    class Counting(MfccEmbedding):
        def __call__(self, mono, rate):
            calls.append(1)
            return super().__call__(mono, rate)

    cache = Cache(str(tmp_path / "cache"))
    first = cache.embed(str(src / "x/1.wav"), Counting())
    second = cache.embed(str(src / "x/1.wav"), Counting())
    np.testing.assert_array_equal(first, second)
    assert len(calls) == 1 and first.shape[1] == 40


def test_clip_shorter_than_a_window_is_padded():
    clip = np.random.default_rng(0).uniform(-0.1, 0.1, 10)
    vectors = MfccEmbedding()(clip, 8000)
    assert vectors.shape == (1, 40) and np.isfinite(vectors).all()
    from poscuda_cli import features
    from poscuda_cli.audio import resample

    padded = np.pad(resample(clip, 8000, 16000), (0, 380))  # silence up to one 25 ms frame at 16 kHz
    np.testing.assert_allclose(vectors[0, :20], features.mfcc(padded, 16000)[0], rtol=1e-9)
    assert not vectors[0, 20:].any()  # one frame: no differences


def test_vggish_backend_with_random_weights(tmp_path):
    torch = pytest.importorskip("torch", reason="the vggish embedding needs torch")
    from poscuda_cli.verify.embeddings import VggishEmbedding, _vggish_network

    torch.manual_seed(0)
    weights = tmp_path / "vggish.pth"
    torch.save(_vggish_network().state_dict(), weights)
    backend = VggishEmbedding(str(weights))
    vectors = backend(speechlike(2.0, 8000)[:, 0], 8000)
    assert vectors.shape == (3, 128) and np.isfinite(vectors).all()  # 2 s -> three 0.96 s patches
    assert backend(np.zeros(10), 8000).shape == (1, 128)  # shorter than a patch: padded
    a = write_tree(tmp_path / "a", TREE)
    result = CliRunner().invoke(main, ["verify", str(a), str(a), "--embedding", "vggish", "--weights",
                                       str(weights), "--cache", "none", "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fad"] == pytest.approx(0.0, abs=1e-6)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    result = CliRunner().invoke(main, ["verify", str(a), str(a), "--embedding", "vggish",
                                       "--weights", str(tmp_path / "junk.pth")])
    assert result.exit_code == 1 and "not VGGish weights" in result.stderr


@pytest.mark.parametrize("flag", [["--perceptual", "pesq"], ["--min-speaker-sim", "0.9"], ["--report", "r.html"]])
def test_perceptual_without_the_extra_says_how_to_install(tmp_path, monkeypatch, flag):
    without_packages(monkeypatch, "pesq", "pystoi", "resemblyzer", "matplotlib")
    a = write_tree(tmp_path / "a", TREE)
    result = CliRunner().invoke(main, ["verify", str(a), str(a), "--cache", "none"] + flag)
    assert result.exit_code == 6 and "pip install 'poscuda[quality]'" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_unknown_perceptual_metric_is_a_usage_error(tmp_path):
    a = write_tree(tmp_path / "a", TREE)
    result = CliRunner().invoke(main, ["verify", str(a), str(a), "--perceptual", "pesq,mos"])
    assert result.exit_code == 2 and "mos" in result.output


@pytest.mark.parametrize("rate, target", [(8000, 16000), (44100, 16000), (16000, 8000), (22050, 8000)])
def test_resample_is_scipys_default_polyphase(rate, target):
    from scipy.signal import resample_poly

    from poscuda_cli.audio import resample

    x = np.random.default_rng(rate).standard_normal(5001)
    g = np.gcd(rate, target)
    np.testing.assert_array_equal(resample(x, rate, target), resample_poly(x, target // g, rate // g))
