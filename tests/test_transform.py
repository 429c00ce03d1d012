import numpy as np
import pytest

from poscuda_cli.signature import layout
from poscuda_cli.key import Key
from poscuda_cli.signature.params import Params
from poscuda_cli.signature.transform import protect_clip

from conftest import speechlike


def outside_mask(plan, frames, rate, values):
    starts, stops = layout.ranges(plan.layout, frames, rate, values)
    mask = np.ones(frames, bool)
    for start, stop in zip(starts, stops):
        mask[start:stop] = False
    return mask


@pytest.mark.parametrize("dtype, bits", [("int16", 16), ("int32", 24), ("int32", 32), ("int16", 8)])
def test_pcm_outside_patches_is_bit_identical_and_on_the_grid(paper_key, dtype, bits):
    quantum = 1 << (np.dtype(dtype).itemsize * 8 - bits)
    x = (np.round(speechlike(0.5, 8000, 2) * (2 ** (bits - 1) - 1)) * quantum).astype(dtype)
    plan = paper_key.label_plan("yes")
    result = protect_clip(x, plan, 8000, bits)
    mask = outside_mask(plan, len(x), 8000, x / quantum)
    assert result.audio.dtype == x.dtype and result.audio.shape == x.shape
    np.testing.assert_array_equal(result.audio[mask], x[mask])
    assert result.changed > 0 and not np.array_equal(result.audio[~mask], x[~mask])
    assert (result.audio % quantum == 0).all()


def test_lowpass_never_exceeds_the_peak(paper_key):
    x = np.full((4000, 1), 32767, np.int16)
    x[::2] = -32768
    result = protect_clip(x, paper_key.label_plan("a"), 8000)
    assert result.clipped == 0
    assert result.audio.max() <= 32767 and result.audio.min() >= -32768


def test_bandstop_saturates_and_counts_clips():
    # a full-scale 100 Hz square loses upper harmonics to the notches: its edges ring past full scale
    key = Key(bytes(32), Params(notches=4, notch_width_hz=800, notch_low_hz=1000, notch_high_hz=3000))
    square = np.where(np.sin(2 * np.pi * 100 * np.arange(8000) / 8000) >= 0, 32767, -32768)
    result = protect_clip(square.astype(np.int16)[:, None], key.label_plan("a"), 8000)
    assert result.clipped > 0
    assert result.audio.max() == 32767 and result.audio.min() == -32768


def test_float_audio_is_saturated_only_when_normalised(key):
    x = (speechlike(0.3) * 1.2).astype(np.float32)  # peak 0.96
    assert np.abs(protect_clip(x, key.label_plan("a"), 8000).audio).max() <= 1.0
    loud = (x * 10).astype(np.float32)
    assert protect_clip(loud, key.label_plan("a"), 8000).clipped == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_float_is_rejected(key, bad):
    x = speechlike(0.1).astype(np.float32)
    x[10] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        protect_clip(x, key.label_plan("a"), 8000)


def test_every_channel_gets_the_same_treatment(key):
    mono = (speechlike(0.4)[:, 0] * 20000).astype(np.int16)
    stereo = np.stack([mono, mono], axis=1)
    result = protect_clip(stereo, key.label_plan("a"), 8000)
    np.testing.assert_array_equal(result.audio[:, 0], result.audio[:, 1])
    np.testing.assert_array_equal(result.audio[:, :1], protect_clip(mono[:, None], key.label_plan("a"), 8000).audio)


def test_empty_and_tiny_clips(key, paper_key):
    for k in (key, paper_key):
        assert protect_clip(np.zeros((0, 1), np.int16), k.label_plan("a"), 8000).audio.shape == (0, 1)
        assert protect_clip(np.ones((3, 2), np.int16), k.label_plan("a"), 8000).audio.shape == (3, 2)
