"""Long files are processed in blocks: the output must be byte-identical to one-piece processing."""

import numpy as np
import pytest
import soundfile as sf

import poscuda_cli.protect as pipeline
from poscuda_cli import audio
from poscuda_cli.key import generate_key
from poscuda_cli.signature.params import Params
from poscuda_cli.protect import protect_tree
from poscuda_cli.stream import protect_file_in_blocks
from poscuda_cli.signature.transform import protect_clip

from conftest import speechlike


@pytest.mark.parametrize("subtype, layout", [("PCM_16", "whole"), ("PCM_24", "onset"), ("FLOAT", "tile"),
                                             ("PCM_16", "fractions")])
@pytest.mark.parametrize("fft_block", [1 << 16, 1024])  # one FFT block per clip, or many split over windows
@pytest.mark.parametrize("threads", [1, 3])
def test_blocks_equal_one_piece(tmp_path, subtype, layout, fft_block, threads, monkeypatch):
    import poscuda_cli.signature.kernel as kernel

    monkeypatch.setattr(kernel, "FFT_BLOCK_MIN", fft_block)
    key = generate_key(Params(layout=layout, patches=5, patch_ms=300, frame_s=2.0, period_min_ms=90))
    rate = 16000
    signal = np.concatenate([np.zeros((rate, 2)), speechlike(3.3, rate, 2, seed=5)]) * 0.9
    src = tmp_path / f"long.{subtype}.wav"
    sf.write(src, signal, rate, subtype=subtype)
    data, info = audio.read(str(src))
    whole = protect_clip(data, key.label_plan("x"), rate, info.bits)
    out = tmp_path / "out.wav"
    with audio.opened(str(src)) as (handle, info):
        samples, changed, clipped = protect_file_in_blocks(handle, str(out), key.label_plan("x"), info,
                                                           block_seconds=0.37, threads=threads)
    blocks, _ = audio.read(str(out))
    np.testing.assert_array_equal(blocks, whole.audio)
    assert (samples, changed, clipped) == (data.size, whole.changed, whole.clipped)
    audio.write_atomic(str(tmp_path / "ref.wav"), whole.audio, info)
    assert out.read_bytes() == (tmp_path / "ref.wav").read_bytes()


def test_protect_tree_streams_long_files(tmp_path, key, monkeypatch):
    src = tmp_path / "in" / "a"
    src.mkdir(parents=True)
    sf.write(src / "long.flac", speechlike(2.0, 8000, 1), 8000, subtype="PCM_16")
    protect_tree(tmp_path / "in", tmp_path / "one-piece", key)
    monkeypatch.setattr(pipeline, "STREAM_SAMPLES", 1000)
    protect_tree(tmp_path / "in", tmp_path / "blocks", key)
    assert (tmp_path / "blocks/a/long.flac").read_bytes() == (tmp_path / "one-piece/a/long.flac").read_bytes()
