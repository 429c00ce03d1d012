"""Google's ``speech_embedding`` keyword-spotting model (Lin et al., arXiv 2002.01322) as the
openwakeword 0.4.0 wheel bundles it, run with onnxruntime: a log-mel front end
(``melspectrogram.onnx``, then ``x / 10 + 2`` as openwakeword applies it) and a conv net
(``embedding_model.onnx``) giving one 96-d vector per 76-frame (0.775 s) window, every 8 frames
(80 ms). Later openwakeword releases download their models at run time, hence the pin.
Clips are resampled to 16 kHz and centred in a window of at least 2 s, as a careful attacker
does: where a short clip sits in the window moved this attacker by 20-35 points.

Licences: openwakeword's README puts its bundled models under CC BY-NC-SA 4.0; Google published
``speech_embedding`` itself under Apache-2.0.
"""

import os
from functools import lru_cache
from importlib import metadata, util

import numpy as np

from .. import audio
from ..errors import MissingExtraError

INSTALL = "pip install 'poscuda[encoders]'"

KWS_PACKAGE, KWS_VERSION = "openwakeword", "0.4.0"
KWS_FILES = ("melspectrogram.onnx", "embedding_model.onnx")
KWS_RATE = 16000
KWS_WINDOW, KWS_STEP = 76, 8  # mel frames per embedding, and between embeddings
KWS_SECONDS = 2.0  # the shortest window a clip is centred in
BATCH = 2048  # embedding windows per onnxruntime call


@lru_cache(maxsize=1)
def model_paths():
    """The two ONNX files inside the openwakeword wheel; exit 6 with the install line without them."""
    try:
        version = metadata.version(KWS_PACKAGE)
        import onnxruntime  # noqa: F401
    except (metadata.PackageNotFoundError, ImportError):
        raise MissingExtraError(f"kws-linear and kws-mlp need {KWS_PACKAGE}=={KWS_VERSION} and onnxruntime: "
                                f"{INSTALL}") from None
    if version != KWS_VERSION:
        raise MissingExtraError(f"kws-linear and kws-mlp need {KWS_PACKAGE}=={KWS_VERSION}, which ships its "
                                f"models (found {version}, which downloads them at run time): {INSTALL}")
    folder = os.path.join(os.path.dirname(util.find_spec(KWS_PACKAGE).origin), "resources", "models")
    paths = tuple(os.path.join(folder, name) for name in KWS_FILES)
    for path in paths:
        if not os.path.isfile(path):
            raise MissingExtraError(f"{KWS_PACKAGE} {KWS_VERSION} is installed without "
                                    f"{os.path.basename(path)} ({path}); reinstall it: {INSTALL}")
    return paths


@lru_cache(maxsize=2)
def _sessions(threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return tuple(onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                 for path in model_paths())


def samples(clips, seconds=KWS_SECONDS):
    """(clips, samples) float32 at 16 kHz in int16 units, as openwakeword takes them: each clip
    centred in a window of ``seconds`` (at least 2 s; a longer clip keeps its middle)."""
    length = int(round(max(seconds, KWS_SECONDS) * KWS_RATE))
    out = np.zeros((len(clips.data), length), np.float32)
    for i, (data, info) in enumerate(zip(clips.data, clips.infos)):
        mono = audio.resample(audio.to_mono_float(data), info.samplerate, KWS_RATE) * 32767.0
        if len(mono) > length:
            start = (len(mono) - length) // 2
            out[i] = mono[start:start + length]
        else:
            start = (length - len(mono)) // 2
            out[i, start:start + len(mono)] = mono
    return out


def embed(clips, seconds=KWS_SECONDS, threads=None):
    """(clips, windows, 96) speech embeddings."""
    mel_model, embedding_model = _sessions(threads or os.cpu_count() or 1)
    # one clip per call: the front end clips at 80 dB below the maximum of its whole input
    mels = [mel_model.run(None, {"input": wave[None]})[0][0, 0] / 10 + 2 for wave in samples(clips, seconds)]
    windows = np.lib.stride_tricks.sliding_window_view(np.stack(mels), KWS_WINDOW, axis=1)[:, ::KWS_STEP]
    count, per_clip = windows.shape[:2]
    flat = np.ascontiguousarray(windows.transpose(0, 1, 3, 2), np.float32).reshape(-1, KWS_WINDOW, 32, 1)
    vectors = [embedding_model.run(None, {"input_1": flat[start:start + BATCH]})[0].reshape(-1, 96)
               for start in range(0, len(flat), BATCH)]
    return np.concatenate(vectors).reshape(count, per_clip, 96)
