import numpy as np
import pytest

from poscuda_cli.signature import layout
from poscuda_cli.signature.params import Params


def spec_for(**overrides):
    return layout.draw(Params(**overrides), np.random.default_rng(0))


@pytest.mark.parametrize("kind", ["offsets", "fractions", "onset", "tile", "whole"])
@pytest.mark.parametrize("frames", [0, 1, 57, 8000, 123457])
def test_ranges_are_sorted_disjoint_and_inside(kind, frames):
    spec = spec_for(layout=kind, patches=6, patch_ms=30, frame_s=0.5)
    audio = np.random.default_rng(1).standard_normal((frames, 1))
    starts, stops = layout.ranges(spec, frames, 8000, layout.envelope(audio, 8000))
    assert (starts >= 0).all() and (stops <= frames).all() and (stops > starts).all()
    assert (starts[1:] > stops[:-1]).all()


def test_offsets_are_absolute_and_fractions_scale_with_length():
    offsets = spec_for(layout="offsets", patches=1, patch_ms=10, frame_s=1.0)
    fractions = spec_for(layout="fractions", patches=1, patch_ms=10)
    for frames in (8000, 16000):
        start, _ = layout.ranges(offsets, frames, 8000)
        assert start[0] == round(offsets.values[0] * 8000)
        start, _ = layout.ranges(fractions, frames, 8000)
        assert start[0] == int(fractions.values[0] * (frames - 80))


def test_onset_follows_the_speech():
    spec = spec_for(layout="onset", patches=1, patch_ms=20, frame_s=0.1)
    quiet = np.zeros((8000, 1))
    loud = quiet.copy()
    loud[3040:5000] = 0.5  # onset found on a 10 ms grid
    start, _ = layout.ranges(spec, 8000, 8000, layout.envelope(loud, 8000))
    assert start[0] == 3040 + round(spec.values[0] * 8000)
    assert layout.onset(layout.envelope(quiet, 8000), 8000) == 0


def test_tile_is_periodic():
    spec = spec_for(layout="tile", patch_ms=10, period_min_ms=50, period_max_ms=60)
    starts, stops = layout.ranges(spec, 16000, 8000)
    period = round(spec.values[0] * 8000)
    assert set(np.diff(starts[1:-1])) == {period}
    assert len(starts) >= 16000 // period - 1


def test_whole_covers_everything():
    starts, stops = layout.ranges(spec_for(layout="whole"), 1234, 8000)
    assert starts.tolist() == [0] and stops.tolist() == [1234]
