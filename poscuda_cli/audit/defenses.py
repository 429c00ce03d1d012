"""What a careful attacker does against protection: ``poscuda audit --defense NAME``.

* on the whole training set, once: ``mp3`` and ``ogg`` (re-encoded through libsndfile and
  decoded again), ``resample8k`` (to 8 kHz and back; nothing changes for 8 kHz audio);
* on every training batch, a fresh random draw per clip: ``eq`` (a smooth random EQ curve,
  +-12 dB), ``bandstop`` (1-4 random notches of 50-400 Hz), ``noise`` (white noise at
  10-30 dB SNR over the clip, not its padding);
* on the features of log-mel/MFCC attackers: ``specaugment`` (two frequency masks of up to
  8 of 40 mel bands per training clip, set to the mean level of its sound), ``cmvn`` (each clip's
  features normalised to zero mean and unit variance over time: a front end that cancels a
  fixed filter's log-spectral offset).

A careful attacker stacks them: ``noise+specaugment+cmvn`` applies each named step at its own
stage (dataset, batch, log-mel, features), in that order. ``recipe`` is the standard speech
recipe (the defaults of SpeechBrain-, ESPnet- and Kaldi-style pipelines), itself a stack:
noise at 0-20 dB SNR per clip, white, pink or brown with equal chance; SpecAugment with two
frequency masks (up to 8 of 40 mel bands) and two time masks (up to 10 frames, 100 ms, each);
then CMVN. The defended attacker trains on its defended data and is tested on the clean test
set, as a real one would be. Clean-trained baselines get the same defense.
"""

import io

import numpy as np

from ..audio import resample

DATASET = ("mp3", "ogg", "resample8k")
BATCH = ("eq", "bandstop", "noise", "recipe-noise")
FEATURE = ("specaugment", "recipe-masks", "cmvn")
DEFENSES = ("none", "eq", "bandstop", "noise", "specaugment", "cmvn", "recipe") + DATASET
RECIPE = ("recipe-noise", "recipe-masks", "cmvn")
_SAME_KIND = {"recipe-noise": "noise", "recipe-masks": "specaugment"}  # two of one kind make no sense


def steps(defense):
    """The steps of a defense: one name, or several joined by '+' (``recipe`` stands for its three)."""
    return tuple(step for name in defense.split("+") for step in (RECIPE if name == "recipe" else (name,)))


def invalid(defenses):
    """The names among ``defenses`` that are not a known defense or a stack of distinct known steps."""
    def ok(name):
        kinds = [_SAME_KIND.get(step, step) for step in steps(name)]
        return name == "none" or (set(name.split("+")) <= set(DEFENSES[1:]) and len(set(kinds)) == len(kinds))
    return [name for name in defenses if not ok(name)]


def applies_to(defense, input_kind):
    """Feature steps need a spectral front end; a stack applies where all its steps do. A head on a
    frozen encoder's embeddings (kws, speaker) is trained on the embeddings of the set as it is."""
    if input_kind in ("kws", "speaker"):
        return defense == "none"
    return input_kind != "wave" or not set(steps(defense)) & set(FEATURE)


def per_batch(defense):
    """Whether the defense draws afresh for every training batch."""
    return bool(set(steps(defense)) & {*BATCH, "specaugment", "recipe-masks"})


def on_dataset(defense, waves, samplerate):
    """The training waveforms after a defense's dataset-level steps (others: unchanged)."""
    for step in steps(defense):
        if step in ("mp3", "ogg"):
            waves = np.stack([_reencode(w, samplerate, step) for w in waves])
        elif step == "resample8k" and samplerate != 8000:
            round_trip = [resample(resample(w, samplerate, 8000), 8000, samplerate)[:len(w)] for w in waves]
            waves = np.asarray(round_trip, np.float32)
    return waves


def _reencode(wave, samplerate, defense):
    import soundfile as sf

    fmt, subtype = ("MP3", "MPEG_LAYER_III") if defense == "mp3" else ("OGG", "VORBIS")
    peak = max(float(np.abs(wave).max()), 1e-9)
    buffer = io.BytesIO()
    sf.write(buffer, wave / peak * 0.9, samplerate, format=fmt, subtype=subtype)
    buffer.seek(0)
    decoded = sf.read(buffer, dtype="float32")[0]
    out = np.zeros_like(wave)
    out[:min(len(wave), len(decoded))] = decoded[:len(wave)] * (peak / 0.9)
    return out


def on_batch(defense, waves, samplerate, rng):
    """A training batch of waveforms after a defense's per-batch steps (others: unchanged)."""
    for step in steps(defense):
        if step in BATCH:
            waves = _batch_step(step, waves, samplerate, rng)
    return waves


def _batch_step(step, waves, samplerate, rng):
    if step == "noise":
        return _add_noise(waves, rng.uniform(10.0, 30.0, (len(waves), 1)), np.zeros((len(waves), 1)), rng)
    if step == "recipe-noise":
        return _add_noise(waves, rng.uniform(0.0, 20.0, (len(waves), 1)),
                          rng.choice([0.0, 1.0, 2.0], (len(waves), 1)), rng)
    spectrum = np.fft.rfft(waves, axis=1)
    freqs = np.fft.rfftfreq(waves.shape[1], 1.0 / samplerate)
    gains = np.stack([_eq_curve(freqs, rng) if step == "eq" else _notches(freqs, rng) for _ in waves])
    return np.fft.irfft(spectrum * gains, waves.shape[1], axis=1).astype(np.float32)


def _add_noise(waves, snr_db, colour, rng):
    """Noise at ``snr_db`` over each clip's own extent (noise in the zero padding would teach "noise
    floor = training"), its power falling as 1/f**colour: 0 white, 1 pink, 2 brown."""
    extent = np.cumsum(waves[:, ::-1] != 0, axis=1)[:, ::-1] > 0
    samples = np.maximum(extent.sum(axis=1, keepdims=True), 1)
    power = np.sum(waves.astype(np.float64) ** 2, axis=1, keepdims=True) / samples
    noise = rng.standard_normal(waves.shape)
    if np.any(colour):
        bins = np.arange(waves.shape[1] // 2 + 1, dtype=np.float64)
        gain = np.where(bins > 0, np.maximum(bins, 1.0) ** (-colour / 2), 0.0)
        noise = np.fft.irfft(np.fft.rfft(noise, axis=1) * gain, waves.shape[1], axis=1)
        noise /= np.sqrt(np.mean(noise ** 2, axis=1, keepdims=True))  # unit power, as white noise has
    noise = noise * np.sqrt(power / 10 ** (snr_db / 10)) * extent
    return (waves + noise).astype(np.float32)


def _eq_curve(freqs, rng, points=8, max_db=12.0):
    """A smooth random gain curve: random dB at log-spaced frequencies, interpolated in log frequency."""
    nyquist = freqs[-1]
    anchors = np.geomspace(50.0, nyquist, points)
    db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(anchors), rng.uniform(-max_db, max_db, points))
    return 10 ** (db / 20)


def _notches(freqs, rng):
    gains = np.ones_like(freqs)
    for _ in range(rng.integers(1, 5)):
        centre, width = rng.uniform(100.0, freqs[-1] * 0.95), rng.uniform(50.0, 400.0)
        gains[np.abs(freqs - centre) < width / 2] = 10 ** (rng.uniform(-60, -20) / 20)
    return gains


def on_log_mel(defense, mel, rng, masks=2, widest=8, time_masks=2, longest=10):
    """SpecAugment on a batch of (clips, frames, bands) log-mel features: ``masks`` frequency masks
    of up to ``widest`` bands, and with the recipe also ``time_masks`` of up to ``longest`` frames."""
    chosen = set(steps(defense))
    if not chosen & {"specaugment", "recipe-masks"}:
        return mel
    times = time_masks if "recipe-masks" in chosen else 0
    mel = mel.copy()
    for clip in mel:  # masked to the mean level of the clip's sound (not of its padding, at the log floor)
        floor = clip.min()
        level = clip[clip > floor].mean() if (clip > floor).any() else floor
        for _ in range(masks):
            width = rng.integers(0, widest + 1)
            start = rng.integers(0, clip.shape[1] - width + 1)
            clip[:, start:start + width] = level
        for _ in range(times):
            length = rng.integers(0, longest + 1)
            start = rng.integers(0, clip.shape[0] - length + 1)
            clip[start:start + length] = level
    return mel


def on_features(defense, x):
    """Per-clip mean and variance normalisation over time (``cmvn``) of (clips, frames, dims) features."""
    if "cmvn" not in steps(defense):
        return x
    return (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-5)
