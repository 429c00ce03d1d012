"""Learned per-label filters for ``poscuda keygen --fit TRAIN/`` (needs torch).

Error-minimising ("min-min") noise (Huang et al., ICLR 2021) with a filter in place of
additive noise: each label's gain curve and an ensemble of surrogate attackers -- a raw-
waveform CNN (M5) and an MFCC CNN -- descend the same training loss on the filtered data,
so the filtering comes to explain the labels as easily as possible, and a model trained on
the protected set leans on it. The surrogates start afresh at every stage, so the filters
must be easy to learn from scratch rather than for one particular model.

A curve is gains in dB at mel-spaced anchors, made into a linear-phase FIR exactly as
filters.py does (firwin2's frequency sampling, written here in torch to differentiate it).
It stays inside the level's quality budget: the distortion it leaves in each label's clips,
computed exactly from the label's average power spectrum, keeps the label's mean SNR at or
above ``fit_snr_db`` (each label is scaled back toward 0 dB until it does).
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import features
from ..signature import filters
from ..key import GAIN_RANGE_DB, Fitted
from . import attackers
from .data import waves

SURROGATES = ("raw", "cnn-avg")
ANCHORS = 48
REPORT_STEPS = 300  # batches (at most ten epochs) a fresh surrogate trains on the protected set for the report


@dataclass
class FitReport:
    fitted: Fitted
    snr_db: dict  # label -> the SNR budget's value for its curve (dB)
    surrogate_fit: dict  # surrogate -> accuracy on the protected training set, trained afresh on it
    surrogate_clean: dict  # ... and on the clean training set (low: it learned the filters, not the audio)


class CurveFilters(nn.Module):
    """Per-label gain curves (dB at anchors) and the linear-phase FIRs they make (firwin2 in torch)."""

    def __init__(self, labels, samplerate, filter_ms, seed):
        super().__init__()
        self.anchors = filters.curve_anchors(samplerate, ANCHORS)
        self.numtaps = filters.taps_for(filter_ms, samplerate)
        generator = torch.Generator().manual_seed(seed)
        self.gains_db = nn.Parameter(torch.randn(len(labels), ANCHORS, generator=generator, dtype=torch.float64))
        nyquist = samplerate / 2.0
        points = 1 + 2 ** int(np.ceil(np.log2(self.numtaps)))  # firwin2's frequency grid
        grid = np.linspace(0.0, nyquist, points)
        self.register_buffer("interp", torch.as_tensor(_interpolation(grid, np.array(self.anchors))))
        self.register_buffer("shift", torch.exp(-1j * np.pi * (self.numtaps - 1) / 2 * torch.as_tensor(grid) / nyquist))
        from scipy.signal import get_window

        self.register_buffer("window", torch.as_tensor(get_window("hamming", self.numtaps, fftbins=False)))

    def taps(self):
        """(labels, numtaps) float64 FIR taps, as filters.design makes them from these curves."""
        gains = 10.0 ** (self.gains_db / 20.0) @ self.interp.T
        full = torch.fft.irfft(gains * self.shift)
        return full[:, :self.numtaps] * self.window

    @torch.no_grad()
    def keep_within(self, spectra, budget):
        """Scale each curve toward 0 dB until its distortion ratio is at most ``budget`` (bisection, all labels at once)."""
        low, high = GAIN_RANGE_DB
        self.gains_db.clamp_(low + 1, high - 1)
        over = distortion(self.taps(), spectra) > budget
        if not over.any():
            return
        curves = self.gains_db.clone()
        lo, hi = torch.zeros(len(curves), dtype=torch.float64), torch.ones(len(curves), dtype=torch.float64)
        for _ in range(20):
            mid = (lo + hi) / 2
            self.gains_db.copy_(curves * mid[:, None])
            too_much = distortion(self.taps(), spectra) > budget
            hi = torch.where(too_much, mid, hi)
            lo = torch.where(too_much, lo, mid)
        self.gains_db.copy_(torch.where(over[:, None], curves * lo[:, None], curves))


def _interpolation(grid, anchors):
    """Matrix that linearly interpolates values at ``anchors`` onto ``grid`` (numpy.interp as a matrix)."""
    out = np.zeros((len(grid), len(anchors)))
    for i, f in enumerate(grid):
        j = min(np.searchsorted(anchors, f, side="right") - 1, len(anchors) - 2)
        t = (f - anchors[j]) / (anchors[j + 1] - anchors[j])
        out[i, j], out[i, j + 1] = 1 - t, t
    return out


def distortion(taps, spectra):
    """Energy of ``x * h - x`` over the energy of ``x``, for each label's mean normalised power spectrum."""
    bins = spectra.shape[1]
    response = torch.fft.rfft(taps, n=2 * (bins - 1))
    delay = (taps.shape[1] - 1) // 2
    omega = torch.arange(bins, dtype=torch.float64) * np.pi / (bins - 1)
    amplitude = response * torch.exp(1j * omega * delay)  # the zero-phase response of "same" filtering
    return ((amplitude - 1).abs() ** 2 * spectra).sum(dim=1)


def label_spectra(waves_by_clip, targets, classes, bins=257):
    """(classes, bins) mean power spectrum of each label's clips, each clip normalised to unit energy."""
    from scipy.signal import welch

    spectra = np.zeros((classes, bins))
    for wave, target in zip(waves_by_clip, targets):
        power = welch(wave, nperseg=2 * (bins - 1))[1]
        spectra[target] += power / max(power.sum(), 1e-20)
    return torch.as_tensor(spectra / np.maximum(spectra.sum(axis=1, keepdims=True), 1e-20))


class FrontEnd(nn.Module):
    """features.mfcc (or, with any other ``kind``, features.log_mel) in torch (differentiable),
    standardised with fixed clean-set statistics."""

    def __init__(self, samplerate, clean, kind="mfcc"):
        super().__init__()
        from scipy.fft import dct

        self.kind = kind
        self.length, self.hop = int(round(features.FRAME_S * samplerate)), int(round(features.HOP_S * samplerate))
        self.n_fft = 1 << int(np.ceil(np.log2(self.length)))
        bank = features.mel_filterbank(samplerate, self.n_fft, 40)
        self.register_buffer("bank", torch.tensor(bank.T, dtype=torch.float32))
        self.register_buffer("window", torch.as_tensor(np.hamming(self.length), dtype=torch.float32))
        self.register_buffer("dct", torch.as_tensor(dct(np.eye(40), type=2, norm="ortho", axis=-1)[:, :20],
                                                    dtype=torch.float32))
        reference = (features.mfcc if kind == "mfcc" else features.log_mel)(clean, samplerate)
        self.register_buffer("mean", torch.as_tensor(reference.mean(axis=(0, 1)), dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(reference.std(axis=(0, 1)) + 1e-6, dtype=torch.float32))

    def forward(self, x):
        frames = x.unfold(-1, self.length, self.hop) * self.window
        power = torch.fft.rfft(frames, self.n_fft).abs() ** 2
        log_mel = torch.log(torch.clamp_min(power @ self.bank, 1e-10 * self.length))
        return ((log_mel @ self.dct if self.kind == "mfcc" else log_mel) - self.mean) / self.std


def filtered(x, taps, targets):
    """Each clip of ``x`` (batch, samples) filtered by its label's taps, "same" alignment (FFT)."""
    size = x.shape[1] + taps.shape[1] - 1
    spectrum = torch.fft.rfft(x.double(), size) * torch.fft.rfft(taps[targets], size)
    start = (taps.shape[1] - 1) // 2
    return torch.fft.irfft(spectrum, size)[:, start:start + x.shape[1]].float()


def fit(clips, params, stages=8, batch_size=32, seed=0, seconds=1.0, progress=None):
    """Fit one gain curve per label of ``clips`` (audit.data.Clips) under ``params.fit_snr_db``; a FitReport."""
    torch.manual_seed(seed)
    classes = sorted(set(clips.labels))
    index = {label: i for i, label in enumerate(classes)}
    targets = torch.as_tensor([index[label] for label in clips.labels])
    rate = clips.samplerate
    train = waves(clips, rate, seconds)
    spectra = label_spectra(train, targets.tolist(), len(classes))
    budget = 10.0 ** (-params.fit_snr_db / 10.0)
    curves = CurveFilters(classes, rate, params.filter_ms, seed)
    curves.keep_within(spectra, budget)
    front = FrontEnd(rate, train)
    x = torch.as_tensor(train)
    curve_step = torch.optim.Adam(curves.parameters(), lr=0.5)
    loss_fn = nn.CrossEntropyLoss()
    for stage in range(stages):
        models = _surrogates(front, x[:1], len(classes), seed + stage)
        model_step = torch.optim.Adam([p for m in models for p in m.parameters()], lr=1e-3)
        order = torch.randperm(len(x))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            protected = filtered(x[idx], curves.taps(), targets[idx])
            loss = sum(loss_fn(model(protected), targets[idx]) for model in models)
            model_step.zero_grad()
            curve_step.zero_grad()
            loss.backward()  # min-min: surrogates and curves both descend the same loss
            model_step.step()
            curve_step.step()
            curves.keep_within(spectra, budget)
        if progress:
            progress()
    return _report(curves, classes, spectra, front, x, targets, seed + stages)


def _surrogates(front, example, classes, seed):
    torch.manual_seed(seed)
    raw = attackers.build("raw", tuple(example.shape[1:]), classes)
    mfcc = attackers.build("cnn-avg", tuple(front(example).shape[1:]), classes)
    return [raw, nn.Sequential(front, mfcc)]


def _report(curves, classes, spectra, front, x, targets, seed):
    """The Fitted curves, the SNR each keeps, and how fresh surrogates do after REPORT_STEPS batches on them."""
    with torch.no_grad():
        taps = curves.taps()
        ratios = distortion(taps, spectra)
        protected = torch.cat([filtered(x[i:i + 256], taps, targets[i:i + 256]) for i in range(0, len(x), 256)])
    gains = curves.gains_db.detach().numpy()
    fitted = Fitted(tuple(curves.anchors), tuple((label, tuple(round(float(g), 3) for g in gains[i]))
                                                 for i, label in enumerate(classes)))
    snr = {label: round(float(-10 * np.log10(max(float(r), 1e-12))), 2) for label, r in zip(classes, ratios)}
    on_protected, on_clean = {}, {}
    for name, model in zip(SURROGATES, _surrogates(front, x[:1], len(classes), seed)):
        step = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        for _ in range(min(REPORT_STEPS, 10 * -(-len(x) // 32))):
            idx = torch.randint(len(x), (32,))
            step.zero_grad()
            nn.functional.cross_entropy(model(protected[idx]), targets[idx]).backward()
            step.step()
        model.eval()
        with torch.no_grad():
            on_protected[name] = _accuracy(model, protected, targets)
            on_clean[name] = _accuracy(model, x, targets)
    return FitReport(fitted, snr, on_protected, on_clean)


def _accuracy(model, x, targets):
    right = sum(int((model(x[i:i + 256]).argmax(1) == targets[i:i + 256]).sum()) for i in range(0, len(x), 256))
    return round(right / len(x), 4)
