import numpy as np
import pytest

from poscuda_cli.signature.kernel import filter_ranges


def reference(x, taps, starts, stops):
    """Pure numpy: the centred ("same") part of the full convolution, kept only inside the ranges.

    Equal to np.convolve(..., "same") when the clip is at least as long as the filter.
    """
    out = x.astype(np.float64).copy()
    half = (len(taps) - 1) // 2
    for c in range(x.shape[1] if len(x) else 0):
        full = np.convolve(x[:, c].astype(np.float64), taps, mode="full")[half:half + len(x)]
        for start, stop in zip(starts, stops):
            out[start:stop, c] = full[start:stop]
    return out


@pytest.mark.parametrize("ntaps", [1, 2, 3, 8, 9, 65])
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_matches_numpy_reference(ntaps, channels):
    rng = np.random.default_rng(ntaps * 10 + channels)
    x = rng.standard_normal((500, channels))
    taps = rng.uniform(-1, 1, ntaps)
    starts, stops = np.array([0, 100, 470]), np.array([30, 260, 500])
    np.testing.assert_allclose(filter_ranges(x, taps, starts, stops), reference(x, taps, starts, stops),
                               rtol=1e-12, atol=1e-12)


def test_outside_ranges_untouched_and_input_not_modified():
    x = np.random.default_rng(1).standard_normal((300, 2))
    before = x.copy()
    y = filter_ranges(x, np.ones(5) / 5, np.array([50]), np.array([80]))
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(y[:50], x[:50])
    np.testing.assert_array_equal(y[80:], x[80:])
    assert not np.array_equal(y[50:80], x[50:80])


def test_clip_shorter_than_filter():
    x = np.random.default_rng(2).standard_normal((4, 1))
    taps = np.arange(1.0, 12.0)
    np.testing.assert_allclose(filter_ranges(x, taps, [0], [4]), reference(x, taps, [0], [4]))


@pytest.mark.parametrize("args, message", [
    ((np.zeros(10), [1.0], [0], [1]), "2-D"),
    ((np.zeros((10, 1)), [], [0], [1]), "taps"),
    ((np.zeros((10, 1)), [1.0], [0, 1], [1]), "equal length"),
    ((np.zeros((10, 1)), [1.0], [5], [11]), "0 <= start"),
    ((np.zeros((10, 1)), [1.0], [5], [4]), "0 <= start"),
])
def test_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        filter_ranges(*args)


def test_splitting_ranges_gives_identical_bits():
    x = np.random.default_rng(3).standard_normal((20000, 2))
    taps = np.random.default_rng(4).standard_normal(257)
    whole = filter_ranges(x, taps, [0], [20000])
    pieces = filter_ranges(x, taps, [0, 100, 5000, 19990], [100, 5000, 19990, 20000])
    assert np.array_equal(whole, pieces)


@pytest.mark.parametrize("ntaps", [47, 48, 257, 1537])
def test_direct_and_fft_paths_match_the_reference(ntaps):
    rng = np.random.default_rng(ntaps)
    x = rng.standard_normal((3000, 2))
    taps = rng.uniform(-1, 1, ntaps)
    starts, stops = np.array([0, 900, 2990]), np.array([40, 1700, 3000])
    np.testing.assert_allclose(filter_ranges(x, taps, starts, stops), reference(x, taps, starts, stops),
                               rtol=1e-9, atol=1e-9)


def test_fft_windows_on_the_grid_give_identical_bits(monkeypatch):
    import poscuda_cli.signature.kernel as kernel

    monkeypatch.setattr(kernel, "FFT_BLOCK_MIN", 1024)
    x = np.random.default_rng(5).standard_normal((50000, 2))
    taps = np.random.default_rng(6).standard_normal(129)
    block = kernel.grid(len(taps), len(x))
    assert block == 4096  # 16 filter lengths, rounded up to a power of two
    whole = filter_ranges(x, taps, [0], [len(x)])
    before, after = 64, 64
    for out_start in range(0, len(x), 3 * block):  # windows of three grid blocks plus the filter's context
        out_stop = min(out_start + 3 * block, len(x))
        lo, hi = max(0, out_start - before), min(len(x), out_stop + after)
        part = filter_ranges(x[lo:hi], taps, [out_start - lo], [out_stop - lo], origin=lo, frames=len(x))
        assert np.array_equal(part[out_start - lo:out_stop - lo], whole[out_start:out_stop])
    with pytest.raises(ValueError, match="grid"):  # a window that cuts a block in two
        filter_ranges(x[1000:9000], taps, [100], [7000], origin=1000, frames=len(x))
