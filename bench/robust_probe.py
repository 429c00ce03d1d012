"""Probes toward a signature that a frozen pretrained encoder's head learns (docs/results.md,
"Toward a robust level"). FSDD's standard split; the attacker is the audit's kws-linear / kws-mlp
(openwakeword 0.4.0's speech_embedding, clip centred in a 2-s window, a head on the standardised
embedding sequence), trained on the protected training split, tested on the clean test split.
Rows go to bench/results/robust.jsonl.

    python bench/robust_probe.py families --keys 3    # hand-made time-varying and additive signatures
    python bench/robust_probe.py visible --keys 3     # does the embedding see them at all?
    python bench/robust_probe.py oracle               # how big a per-label shift of the embedding must be
    python bench/robust_probe.py push --keys 1        # per-label tiles fitted through the encoder (torch)
    python bench/robust_probe.py poison               # per-clip perturbations fitted through it (torch)
    python bench/robust_probe.py frontier             # issue 33: per-clip poisons, two budget shapes
    python bench/robust_probe.py report --plot docs/frontier.png   # docs/results.md's tables from the rows

push, poison and frontier need torch and onnx (poscuda_cli/encoders/kws_torch.py); they take 15-60 min on 2 cores
(frontier: 10-20 min a point).
"""

import argparse
import hashlib
import json
import os
import re
import sys
import time

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.signal import istft, stft

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from efficacy_sweep import DATA  # noqa: E402
from poscuda_cli import encoders  # noqa: E402
from poscuda_cli.audit import probes  # noqa: E402
from poscuda_cli.audit.data import Clips, labeled_files, read_clips  # noqa: E402

OUT = os.environ.get("ROBUST_OUT", os.path.join(HERE, "results/robust.jsonl"))
RATE = 8000
HEADS = ("kws-linear", "kws-mlp")


class Fsdd:
    """FSDD's splits, read once, with the clean embeddings every probe compares against."""

    def __init__(self):
        root, split, _ = DATA["fsdd"]
        self.train = read_clips(root, labeled_files(root, split, test=False))
        self.test = read_clips(root, labeled_files(root, split, test=True))
        self.y_train = np.array([int(label) for label in self.train.labels])
        self.y_test = np.array([int(label) for label in self.test.labels])
        self.e_train = encoders.embed("kws", self.train)
        self.e_test = encoders.embed("kws", self.test)

    def clean_floats(self, i):
        return self.train.data[i][:, 0] / 32768.0

    def protected(self, change, indices=None):
        """The training clips (or ``indices`` of them) through ``change(float clip, index)``, as PCM_16."""
        indices = range(len(self.train.data)) if indices is None else indices
        data = [np.clip(np.rint(change(self.clean_floats(i), i) * 32768), -32768, 32767).astype(np.int16)[:, None]
                for i in indices]
        pick = list(indices)
        return Clips(self.train.root, [self.train.relpaths[i] for i in pick], [self.train.labels[i] for i in pick],
                     data, [self.train.infos[i] for i in pick])

    def attack(self, protected, indices=None):
        """kws-linear and kws-mlp trained on ``protected``, tested on the clean test split."""
        y = self.y_train if indices is None else self.y_train[list(indices)]
        embedded = encoders.embed("kws", protected)
        return {head: probes.train_and_test(head, embedded, y, self.e_test, self.y_test)[1] for head in HEADS}


def quality(original, protected, count=60):
    """Mean PESQ (narrow-band) and SNR of ``protected`` against ``original`` (Clips, in the same order)
    over ``count`` evenly spaced clips."""
    from poscuda_cli.verify.perceptual import NotMeasured, pesq_score

    pick = np.linspace(0, len(protected.data) - 1, count).astype(int)
    scores, snrs = [], []
    for i in pick:
        a, b = original.data[i][:, 0] / 32768.0, protected.data[i][:, 0] / 32768.0
        try:
            scores.append(pesq_score(a, b, RATE)[0])  # narrow-band at 8 kHz; short clips padded
        except NotMeasured:  # P.862 finds no utterance in a few clips; verify counts them apart too
            pass
        snrs.append(10 * np.log10(np.sum(a ** 2) / max(np.sum((a - b) ** 2), 1e-12)))
    return float(np.mean(scores)), float(np.mean(snrs))


def extent(x, frame=80):
    """(start, stop) of the speech: 10 ms frames within 30 dB of the loudest."""
    n = len(x) // frame
    energy = 10 * np.log10(np.mean(x[:n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() - 30)
    return loud[0] * frame, (loud[-1] + 1) * frame


def tremolo(x, p):
    t = np.arange(len(x)) / RATE
    return x * (1 + p["depth"] * np.sin(2 * np.pi * p["rate_hz"] * t + p["phase"]))


def tf_gains(x, p, nfft=256, hop=64):
    """A per-label grid of dB gains (8 mel bands x 8 steps over the speech, zero mean in time)."""
    f, t, spectrum = stft(x, RATE, nperseg=nfft, noverlap=nfft - hop)
    start, stop = extent(x)
    where = np.clip((t * RATE - start) / max(stop - start, 1), 0, 1)
    grid = p["grid"]
    bands, steps = grid.shape
    mel = np.log1p(f / 700)
    at = np.meshgrid(np.interp(mel, np.linspace(0, mel[-1], bands), np.arange(bands)),
                     np.interp(where, np.linspace(0, 1, steps), np.arange(steps)), indexing="ij")
    gain_db = map_coordinates(grid, at, order=1, mode="nearest")
    return istft(spectrum * 10 ** (gain_db / 20), RATE, nperseg=nfft, noverlap=nfft - hop)[1][:len(x)]


def melody(x, p):
    """A per-label sequence of four 80 ms tones over the speech, ``level_db`` below its RMS."""
    start, stop = extent(x)
    t = np.arange(len(x)) / RATE
    y, step = np.zeros_like(x), int(0.08 * RATE)
    for k, at in enumerate(range(start, stop, step)):
        n = min(step, len(x) - at)
        y[at:at + n] += np.sin(2 * np.pi * p["tones"][k % 4] * t[:n]) * np.hanning(n)
    rms = np.sqrt(np.mean(x[start:stop] ** 2))
    return x + y * rms * 10 ** (p["level_db"] / 20) / max(np.sqrt(np.mean(y[start:stop] ** 2)), 1e-9)


def families(rng):
    """name -> (function, {label: parameters}) for one key's draw."""
    def grid(db):
        g = rng.uniform(-db, db, (8, 8))
        return g - g.mean(axis=1, keepdims=True)

    labels = [str(i) for i in range(10)]
    return {
        "tremolo 30%": (tremolo, {l: {"rate_hz": rng.uniform(3, 12), "phase": rng.uniform(0, 2 * np.pi),
                                      "depth": 0.3} for l in labels}),
        "time-frequency gains +-6 dB": (tf_gains, {l: {"grid": grid(6)} for l in labels}),
        "time-frequency gains +-12 dB": (tf_gains, {l: {"grid": grid(12)} for l in labels}),
        "tone melody -20 dB": (melody, {l: {"tones": rng.uniform(300, 3500, 4), "level_db": -20} for l in labels}),
        "tone melody -30 dB": (melody, {l: {"tones": rng.uniform(300, 3500, 4), "level_db": -30} for l in labels}),
    }


def key_rng(name, key):
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"robust:{name}:{key}".encode()).digest()[:8], "little"))


def record(row):
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def run_families(data, keys):
    for key in range(keys):
        for name, (change, params) in families(key_rng("families", key)).items():
            protected = data.protected(lambda x, i: change(x, params[data.train.labels[i]]))
            pesq_nb, snr = quality(data.train, protected)
            record({"probe": "families", "signature": name, "key": key, "pesq": round(pesq_nb, 2),
                    "snr_db": round(snr, 1), **{h: round(a, 4) for h, a in data.attack(protected).items()}})


def run_visible(data, keys, clips=1200):
    """Each clip gets the signature of a random class (not its digit): can a head on the embedding
    tell which signature a clip carries? (chance 10%)"""
    for key in range(keys):
        assign = key_rng("visible", key).integers(0, 10, clips)
        for name, (change, params) in families(key_rng("families", key)).items():
            protected = data.protected(lambda x, i: change(x, params[str(assign[i])]), range(clips))
            embedded = encoders.embed("kws", protected)
            cut = clips * 2 // 3
            accuracy = probes.train_and_test("kws-linear", embedded[:cut], assign[:cut], embedded[cut:],
                                             assign[cut:])[1]
            record({"probe": "visible", "signature": name, "key": key, "signature_accuracy": round(accuracy, 4)})


def run_oracle(data):
    """Shift every window's embedding of a label by ``size`` standard deviations along a random
    per-label direction, directly in embedding space: how large must a learned shortcut be?"""
    flat = data.e_train.reshape(-1, 96)
    scale = flat.std(axis=0) + 1e-6
    directions = np.linalg.qr(np.random.default_rng(1).standard_normal((96, 10)))[0].T
    for size in (1, 4, 8, 16, 32, 64, 128):
        shifted = data.e_train + size * (directions[data.y_train] * scale)[:, None, :]
        record({"probe": "oracle", "shift_sd": size, **{h: round(probes.train_and_test(
            h, shifted, data.y_train, data.e_test, data.y_test)[1], 4) for h in HEADS}})


def standardiser(data):
    import torch

    flat = data.e_train.reshape(-1, 96)
    return torch.tensor(flat.mean(0), dtype=torch.float32), torch.tensor(flat.std(0) + 1e-6, dtype=torch.float32)


def upsampled_in_window(x):
    """(clips, L) at 8 kHz -> (clips, 32000) at 16 kHz in int16 units, centred: the attacker's input."""
    import torch

    count, length = x.shape
    spectrum = torch.fft.rfft(x, dim=1)
    padded = torch.cat([spectrum, torch.zeros(count, length + 1 - spectrum.shape[1], dtype=spectrum.dtype)], 1)
    up = torch.fft.irfft(padded, 2 * length, dim=1) * 2
    out = torch.zeros(count, 32000)
    start = (32000 - 2 * length) // 2
    out[:, start:start + 2 * length] = up * 32767
    return out


def run_push(data, keys, snr_db, steps, tile=2560, per_label=16):
    """Per-label additive tiles (0.32 s, repeated from a random phase, shaped by each clip's 20 ms
    envelope, scaled to ``snr_db``) fitted so the embeddings of a label move along its direction."""
    import torch
    import torch.nn.functional as F
    from poscuda_cli.encoders.kws_torch import Kws

    torch.set_num_threads(os.cpu_count())
    model = Kws().eval()
    mean, scale = standardiser(data)

    def envelope(x, width=160):
        return torch.sqrt(F.conv1d(x[:, None] ** 2, torch.ones(1, 1, width) / width, padding=width // 2)[:, 0, :x.shape[1]]
                          + 1e-10)

    def signature(tiles, x, labels, phase):
        repeated = tiles[labels].repeat(1, x.shape[1] // tile + 2)
        shifted = torch.stack([torch.roll(row, int(p))[:x.shape[1]] for row, p in zip(repeated, phase)]) * envelope(x)
        power = (x ** 2).sum(1, keepdim=True) / ((shifted ** 2).sum(1, keepdim=True) + 1e-12)
        return shifted * torch.sqrt(power / 10 ** (snr_db / 10))

    for key in range(keys):
        rng = key_rng("push", key)
        directions = torch.linalg.qr(torch.from_numpy(rng.standard_normal((96, 10))).float())[0].T
        tiles = torch.nn.Parameter(torch.from_numpy(rng.standard_normal((10, tile))).float() * 0.01)
        optimiser = torch.optim.Adam([tiles], lr=0.01)
        pool = np.concatenate([np.flatnonzero(data.y_train == c)[:per_label] for c in range(10)])
        started, push = time.perf_counter(), 0.0
        for _ in range(steps):
            batch = rng.choice(pool, 40, replace=False)
            length = max(len(data.train.data[i]) for i in batch)
            x = torch.zeros(len(batch), length)
            for j, i in enumerate(batch):
                x[j, :len(data.train.data[i])] = torch.from_numpy(data.clean_floats(i)).float()
            labels = torch.from_numpy(data.y_train[batch])
            y = x + signature(tiles, x, labels, rng.integers(0, tile, len(batch)))
            noise = torch.randn_like(y) * x.pow(2).mean(1, keepdim=True).sqrt() * 10 ** (-rng.uniform(10, 30) / 20)
            embedded = (model(upsampled_in_window(y + noise)) - mean) / scale
            projection = (embedded * directions[labels][:, None, :]).sum(-1)
            optimiser.zero_grad()
            (-projection.mean()).backward()
            optimiser.step()
            push = float(projection.mean().detach())
        fitted = tiles.detach()

        def apply(x, i):
            with torch.no_grad():
                t = torch.from_numpy(x).float()[None]
                label = torch.tensor([data.y_train[i]])
                return x + signature(fitted, t, label, [0])[0].numpy().astype(np.float64)

        protected = data.protected(apply)
        pesq_nb, snr = quality(data.train, protected)
        record({"probe": "push", "key": key, "snr_db": round(snr, 1), "pesq": round(pesq_nb, 2), "steps": steps,
                "fit_push_sd": round(push, 3), "fit_seconds": round(time.perf_counter() - started),
                **{h: round(a, 4) for h, a in data.attack(protected).items()}})


def run_poison(data, snr_db, steps, per_label):
    """Per-clip perturbations (PGD in an L2 ball at ``snr_db``) that move each training clip of digit
    c toward the clean embedding centroid of digit c + 1, on ``per_label`` clips per digit; heads
    trained on those clips (and, for comparison, on the same clips clean)."""
    import torch
    from poscuda_cli.encoders.kws_torch import Kws

    torch.set_num_threads(os.cpu_count())
    model = Kws().eval()
    mean, scale = standardiser(data)
    z = (torch.tensor(data.e_train) - mean) / scale
    centroids = torch.stack([z[torch.from_numpy(data.y_train == c)].mean(0) for c in range(10)])
    pick = np.concatenate([np.flatnonzero(data.y_train == c)[:per_label] for c in range(10)])
    poisoned, started, distances = {}, time.perf_counter(), []
    for i in pick:
        x = torch.from_numpy(data.clean_floats(i)).float()
        target = centroids[(data.y_train[i] + 1) % 10]
        budget = float(x.norm()) * 10 ** (-snr_db / 20)
        delta = torch.zeros_like(x, requires_grad=True)
        optimiser = torch.optim.Adam([delta], lr=budget / np.sqrt(len(x)) / 5)
        for _ in range(steps):
            embedded = (model(upsampled_in_window((x + delta)[None]))[0] - mean) / scale
            loss = ((embedded - target) ** 2).sum(-1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                delta.mul_(min(1.0, budget / (float(delta.norm()) + 1e-12)))
        distances.append(float(loss.detach()) ** 0.5)
        poisoned[int(i)] = (x + delta).detach().numpy().astype(np.float64)
    protected = data.protected(lambda x, i: poisoned[i], pick)
    clean = data.protected(lambda x, i: x, pick)
    pesq_nb, snr = quality(clean, protected, count=min(60, len(pick)))
    record({"probe": "poison", "snr_db": round(snr, 1), "pesq": round(pesq_nb, 2), "steps": steps,
            "clips": len(pick), "fit_seconds": round(time.perf_counter() - started),
            "distance_to_target_sd": round(float(np.mean(distances)), 2),
            **{h: round(a, 4) for h, a in data.attack(protected, pick).items()},
            **{f"{h} clean-trained": round(a, 4) for h, a in data.attack(clean, pick).items()}})


# the points as run (issue 33), in that order: PESQ ~3.5 first
FRONTIER_POINTS = "shaped:5,l2:25,shaped:10,l2:30,shaped:7.5,shaped:15,l2:27.5,l2:20,shaped:20"
SPEAKER = re.compile(r"^\d/\d_([a-z]+)_")
WINDOW_8K = int(encoders.KWS_SECONDS * RATE)  # the attacker's 2-s window, before upsampling


def diverse_subset(data, per_label, seed=0):
    """``per_label`` training clips of each digit drawn by ``seed`` round-robin over the speakers
    (each speaker's clips shuffled, speakers in a shuffled order), so every speaker appears for
    every digit once ``per_label`` >= the number of speakers."""
    rng = np.random.default_rng(seed)
    pick = []
    for c in range(10):
        groups = {}
        for i in np.flatnonzero(data.y_train == c):
            groups.setdefault(SPEAKER.match(data.train.relpaths[i]).group(1), []).append(int(i))
        order = [groups[s] for s in rng.permutation(sorted(groups))]
        for group in order:
            rng.shuffle(group)
        taken = [group[k] for k in range(max(map(len, order))) for group in order if k < len(group)]
        pick += taken[:per_label]
    return np.array(pick)


def derangement(key):
    """The target digit of each digit: a permutation with no fixed point, drawn from ``key``."""
    rng = key_rng("frontier", key)
    while True:
        perm = rng.permutation(10)
        if not np.any(perm == np.arange(10)):
            return perm


def polyphase_taps():
    """audio.resample's 8 -> 16 kHz filter (scipy's resample_poly design), for torch."""
    import torch
    from poscuda_cli.audio import resampling_filter

    return torch.tensor(resampling_filter(2, 1), dtype=torch.float32)


def in_window(x, lengths, shifts):
    """(clips, L) at 8 kHz, zero past each clip's length -> (clips, 16000): each clip centred in
    the 2-s window (a longer clip keeps its middle), moved by ``shifts`` samples."""
    import torch

    starts = (WINDOW_8K - lengths) // 2 + shifts  # negative for a clip longer than the window
    index = torch.arange(WINDOW_8K)[None, :] - starts[:, None]
    valid = (index >= 0) & (index < lengths[:, None])
    return torch.gather(x, 1, index.clamp(0, x.shape[1] - 1)) * valid


def upsample(window, method, taps=None):
    """(clips, n) at 8 kHz -> (clips, 2n) at 16 kHz in int16 units: ``fft`` (band-limited, circular)
    or ``poly`` (zero insertion and audio.resample's FIR filter, as the attacker's pipeline)."""
    import torch
    import torch.nn.functional as F

    count, n = window.shape
    if method == "fft":
        spectrum = torch.fft.rfft(window, dim=1)
        padded = torch.cat([spectrum, torch.zeros(count, n + 1 - spectrum.shape[1], dtype=spectrum.dtype)], 1)
        return torch.fft.irfft(padded, 2 * n, dim=1) * 2 * 32767
    stuffed = torch.zeros(count, 2 * n)
    stuffed[:, ::2] = window
    return F.conv1d(stuffed[:, None], (2 * taps)[None, None], padding=len(taps) // 2)[:, 0] * 32767


def shaped_bound(x, budget_db, nfft=256, hop=64):
    """Per-bin bound on the perturbation's STFT magnitude: the clip's own power spectrogram
    averaged over 3 frames x 5 bins (a crude stand-in for a masking threshold), ``budget_db`` under."""
    import torch
    import torch.nn.functional as F

    spectrum = torch.stft(x, nfft, hop, window=torch.hann_window(nfft), return_complex=True)
    power = F.avg_pool2d(spectrum.abs()[:, None] ** 2, (5, 3), 1, (2, 1), count_include_pad=False)[:, 0]
    return power.sqrt() * 10 ** (-budget_db / 20)


def budgeted(x, lengths, shape, budget_db, nfft=256, hop=64):
    """(parameters, perturbation(), project()) of per-clip perturbations of ``x`` (clips, L) within a
    budget: ``l2``, an L2 ball at ``budget_db`` SNR; ``shaped``, the inverse STFT of a complex
    factor of modulus <= 1 per bin times shaped_bound, ``budget_db`` under it."""
    import torch

    count, length = x.shape
    mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    if shape == "l2":
        budget = x.norm(dim=1) * 10 ** (-budget_db / 20)
        unit = (budget / lengths.float().sqrt())[:, None]  # one unit of v = the budget's RMS
        v = torch.zeros(count, length, requires_grad=True)
        params = [v]

        def perturbation():
            return v * unit * mask

        def project():
            with torch.no_grad():
                norm = (v * mask).norm(dim=1, keepdim=True)
                v.mul_(torch.clamp(lengths.float().sqrt()[:, None] / (norm + 1e-12), max=1.0))
    else:
        bound = shaped_bound(x, budget_db, nfft, hop)
        re_part = torch.zeros_like(bound, requires_grad=True)
        im_part = torch.zeros_like(bound, requires_grad=True)
        params = [re_part, im_part]
        hann = torch.hann_window(nfft)

        def perturbation():
            z = torch.complex(re_part, im_part) * bound
            return torch.istft(z, nfft, hop, window=hann, length=length) * mask

        def project():
            with torch.no_grad():
                scale = torch.clamp(1.0 / (torch.sqrt(re_part ** 2 + im_part ** 2) + 1e-12), max=1.0)
                re_part.mul_(scale)
                im_part.mul_(scale)
    return params, perturbation, project


def fit_poisons(model, x, lengths, targets, shape, budget_db, steps, rng, lr=0.2, chunk=50, patience=8):
    """Per-clip perturbations (clips, L) pulling each clip's standardised embedding (``model``:
    the torch port, with ``model.mean`` / ``model.scale``) toward ``targets`` (clips, windows, 96),
    all clips in each Adam step, expectation over transformations inside the loop (gain +-6 dB,
    white noise 30-50 dB under the clip, a time shift of +-10 ms, FFT or polyphase upsampling at
    random per clip). ``l2``: within an L2 ball at ``budget_db`` SNR; ``shaped``: each STFT bin
    ``budget_db`` under shaped_bound. Returns (perturbations, loss per step)."""
    import torch

    count, length = x.shape
    mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    taps = polyphase_taps()
    params, perturbation, project = budgeted(x, lengths, shape, budget_db)
    optimiser = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps, eta_min=lr / 10)
    rms = torch.sqrt((x ** 2).sum(1) / lengths.float())
    curve = []
    for step in range(steps):
        gain = torch.from_numpy(10 ** (rng.uniform(-6, 6, count) / 20)).float()[:, None]
        noise_db = torch.from_numpy(rng.uniform(30, 50, count)).float()[:, None]
        shifts = torch.from_numpy(rng.integers(-80, 81, count))
        use_fft = torch.from_numpy(rng.random(count) < 0.5)[:, None]
        noise = torch.from_numpy(rng.standard_normal((count, length))).float() * rms[:, None] * 10 ** (-noise_db / 20)
        optimiser.zero_grad()
        total, perturbed = 0.0, perturbation()
        for start in range(0, count, chunk):  # the loss is a sum over clips: chunks only bound memory
            part = slice(start, start + chunk)
            y = ((x[part] + perturbed[part]) * gain[part] + noise[part] * mask[part])
            window = in_window(y, lengths[part], shifts[part])
            up = torch.where(use_fft[part], upsample(window, "fft"), upsample(window, "poly", taps))
            z = (model(up) - model.mean) / model.scale
            loss = ((z - targets[part]) ** 2).sum(-1).mean(-1).sum() / count
            loss.backward(retain_graph=True)
            total += float(loss.detach())
        optimiser.step()
        schedule.step()
        project()
        curve.append(round(total, 2))
        print(f"  step {step + 1}: loss {total:.2f}", flush=True)
        if step >= 2 * patience and min(curve[-patience:]) > 0.995 * min(curve[:-patience]):
            break  # no 0.5% gain in ``patience`` steps: a plateau
    with torch.no_grad():
        return perturbation().detach(), curve


def quality_all(original, protected):
    """Mean PESQ (narrow-band), STOI and SNR over every clip (Clips, same order), and how many
    clips PESQ / STOI could measure."""
    from poscuda_cli.verify.perceptual import NotMeasured, pesq_score, stoi_scores

    pesqs, stois, snrs = [], [], []
    for a16, b16 in zip(original.data, protected.data):
        a, b = a16[:, 0] / 32768.0, b16[:, 0] / 32768.0
        try:
            pesqs.append(pesq_score(a, b, RATE)[0])
        except NotMeasured:
            pass
        try:
            stois.append(stoi_scores(a, b, RATE)[0])
        except NotMeasured:
            pass
        snrs.append(10 * np.log10(np.sum(a ** 2) / max(np.sum((a - b) ** 2), 1e-12)))
    return float(np.mean(pesqs)), float(np.mean(stois)), float(np.mean(snrs)), len(pesqs), len(stois)


def port_error(model, clips, reference):
    """Mean over clips of |torch port (FFT and polyphase upsampling) - onnxruntime (audit's
    resampling)| / |onnxruntime|, embeddings flattened over windows."""
    import torch

    floats = [d[:, 0] / 32768.0 for d in clips.data]
    lengths = torch.tensor([len(f) for f in floats])
    x = torch.zeros(len(floats), int(lengths.max()))
    for i, f in enumerate(floats):
        x[i, :len(f)] = torch.from_numpy(f).float()
    window = in_window(x, lengths, torch.zeros(len(floats), dtype=torch.long))
    ref = torch.from_numpy(reference).float().reshape(len(floats), -1)
    out = {}
    with torch.no_grad():
        for method, name in (("fft", "port_embedding_error"), ("poly", "port_embedding_error_polyphase")):
            mine = torch.cat([model(upsample(window[k:k + 25], method, polyphase_taps()))
                              for k in range(0, len(floats), 25)]).reshape(len(floats), -1)
            out[name] = round(float(((mine - ref).norm(dim=1) / ref.norm(dim=1)).mean()), 4)
    return out


def run_frontier(data, points, steps, per_label, key=0, seed=0):
    """The white-box frontier (issue 33): per-clip targeted poisons on a speaker-diverse subset,
    one row per (shape, budget) point, heads trained on the poisoned subset, tested clean."""
    import torch
    from poscuda_cli.encoders.kws_torch import Kws

    torch.set_num_threads(min(2, os.cpu_count()))
    model = Kws(batched=True).eval()
    model.mean, model.scale = standardiser(data)
    z = (torch.tensor(data.e_train) - model.mean) / model.scale
    centroids = torch.stack([z[torch.from_numpy(data.y_train == c)].mean(0) for c in range(10)])
    pick = diverse_subset(data, per_label, seed)
    speakers = {SPEAKER.match(data.train.relpaths[i]).group(1) for i in pick}
    perm = derangement(key)
    targets = centroids[perm[data.y_train[pick]]]
    clean = data.protected(lambda x, i: x, pick)
    clean_heads = data.attack(clean, pick)
    print(f"subset: {len(pick)} clips, {len(speakers)} speakers; clean-trained {clean_heads}; "
          f"targets {perm.tolist()}", flush=True)
    floats = [data.clean_floats(i) for i in pick]
    lengths = torch.tensor([len(f) for f in floats])
    x = torch.zeros(len(pick), int(lengths.max()))
    for j, f in enumerate(floats):
        x[j, :len(f)] = torch.from_numpy(f).float()
    clean_distance = float(((torch.from_numpy(data.e_train[pick]).float() - model.mean) / model.scale - targets)
                           .pow(2).sum(-1).mean().sqrt())
    for point in points.split(","):
        shape, budget_db, *own_steps = point.split(":")  # shape:budget_db[:steps]
        budget_db = float(budget_db)
        started = time.perf_counter()
        print(f"{shape} {budget_db} dB", flush=True)
        point_steps = int(own_steps[0]) if own_steps else steps
        delta, curve = fit_poisons(model, x, lengths, targets, shape, budget_db, point_steps,
                                   key_rng(f"frontier-eot:{shape}:{budget_db}", key))
        fit_seconds = time.perf_counter() - started
        poisoned = {int(i): np.clip((x[j, :lengths[j]] + delta[j, :lengths[j]]).numpy().astype(np.float64), -1, 1)
                    for j, i in enumerate(pick)}
        protected = data.protected(lambda x, i: poisoned[i], pick)
        embedded = encoders.embed("kws", protected)
        distance = float(((torch.from_numpy(embedded).float() - model.mean) / model.scale - targets)
                         .pow(2).sum(-1).mean().sqrt())
        pesq_nb, stoi, snr, n_pesq, n_stoi = quality_all(clean, protected)
        heads = {h: probes.train_and_test(h, embedded, data.y_train[pick], data.e_test, data.y_test)[1]
                 for h in HEADS}
        record({"probe": "frontier", "shape": shape, "budget_db": budget_db, "key": key,
                **{h: round(a, 4) for h, a in heads.items()},
                **{f"{h} clean-trained": round(a, 4) for h, a in clean_heads.items()},
                "pesq": round(pesq_nb, 2), "stoi": round(stoi, 3), "snr_db": round(snr, 1),
                "pesq_clips": n_pesq, "stoi_clips": n_stoi, "steps": len(curve),
                "seconds_per_clip": round(fit_seconds / len(pick), 2), "speakers": len(speakers),
                "clips": len(pick), **port_error(model, protected, embedded),
                "distance_to_target_sd": round(distance, 2), "clean_distance_to_target_sd": round(clean_distance, 2),
                "loss_curve": curve})


def spread(values, scale=100, digits=0):
    """'mean [min-max]' of ``values`` (times ``scale``)."""
    v = [scale * x for x in values]
    text = f"{{:.{digits}f}}"
    return f"{text.format(np.mean(v))} [{text.format(min(v))}–{text.format(max(v))}]" if len(v) > 1 \
        else text.format(v[0])


def report(plot=None):
    with open(OUT) as handle:
        rows = [json.loads(line) for line in handle if line.strip()]

    def of(probe):
        return [r for r in rows if r["probe"] == probe]

    def grouped(probe):
        out = {}
        for r in of(probe):
            out.setdefault(r["signature"], []).append(r)
        return out

    lines = ["| signature | keys | PESQ | SNR (dB) | kws-linear | kws-mlp |", "|---|---|---|---|---|---|"]
    for name, group in grouped("families").items():
        lines.append(f"| {name} | {len(group)} | {np.mean([r['pesq'] for r in group]):.2f} | "
                     f"{np.mean([r['snr_db'] for r in group]):.1f} | **{spread([r['kws-linear'] for r in group])}** | "
                     f"**{spread([r['kws-mlp'] for r in group])}** |")
    lines += ["", "| signature | keys | kws-linear tells the signature (chance 10%) |", "|---|---|---|"]
    lines += [f"| {name} | {len(group)} | {spread([r['signature_accuracy'] for r in group])} |"
              for name, group in grouped("visible").items()]
    lines += ["", "| shift (standard deviations) | " + " | ".join(str(r["shift_sd"]) for r in of("oracle")) + " |",
              "|---|" + "---|" * len(of("oracle"))]
    for head in HEADS:
        lines.append(f"| {head} | " + " | ".join(f"{100 * r[head]:.0f}" for r in of("oracle")) + " |")
    lines += ["", "| probe | SNR (dB) | PESQ | steps | fit (s) | pushed / distance left (sd) | kws-linear | kws-mlp "
              "| the same clips clean: kws-linear / kws-mlp |", "|---|---|---|---|---|---|---|---|---|"]
    for r in of("push") + of("poison"):
        if "note" in r:
            r = dict(r, probe=f"{r['probe']} (single-speaker artefact)")
        clean = (f"{100 * r['kws-linear clean-trained']:.0f} / {100 * r['kws-mlp clean-trained']:.0f}"
                 if "kws-linear clean-trained" in r else "100 / 99 (all 2,700)")
        moved = r.get("fit_push_sd", r.get("distance_to_target_sd"))
        lines.append(f"| {r['probe']}{' (' + str(r['clips']) + ' clips)' if 'clips' in r else ''} | {r['snr_db']} | "
                     f"{r['pesq']} | {r['steps']} | {r['fit_seconds']} | {moved} | **{100 * r['kws-linear']:.0f}** | "
                     f"**{100 * r['kws-mlp']:.0f}** | {clean} |")
    lines += ["", "| shape | budget (dB) | SNR (dB) | PESQ | STOI | kws-linear | kws-mlp | the same clips clean: "
              "kws-linear / kws-mlp | steps | s / clip | distance to target, sd (clean) | port error |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(of("frontier"), key=lambda r: (r["shape"], -r["budget_db"])):
        budget = f"{r['budget_db']:g} SNR" if r["shape"] == "l2" else f"{r['budget_db']:g} under each bin"
        lines.append(f"| {r['shape']} | {budget} | {r['snr_db']} | {r['pesq']:.2f} | {r['stoi']:.3f} | "
                     f"**{100 * r['kws-linear']:.0f}** | **{100 * r['kws-mlp']:.0f}** | "
                     f"{100 * r['kws-linear clean-trained']:.0f} / {100 * r['kws-mlp clean-trained']:.0f} | "
                     f"{r['steps']} | {r['seconds_per_clip']} | {r['distance_to_target_sd']} "
                     f"({r['clean_distance_to_target_sd']}) | {100 * r['port_embedding_error']:.1f}% |")
    print("\n".join(lines))
    if plot and of("frontier"):
        plot_frontier(of("frontier"), plot)


def plot_frontier(rows, out):
    """Accuracy against PESQ for both shapes, and the fit's loss against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    styles = {"l2": ("o", "L2 ball at the SNR"), "shaped": ("s", "each STFT bin under the clip's own")}
    for shape, (marker, name) in styles.items():
        group = sorted((r for r in rows if r["shape"] == shape), key=lambda r: r["pesq"])
        if not group:
            continue
        pesq = [r["pesq"] for r in group]
        colour = "C0" if shape == "l2" else "C1"
        left.plot(pesq, [100 * r["kws-linear"] for r in group], marker=marker, color=colour,
                  label=f"{shape}: kws-linear ({name})")
        left.plot(pesq, [100 * r["kws-mlp"] for r in group], marker=marker, color=colour, linestyle="--",
                  fillstyle="none", label=f"{shape}: kws-mlp")
        for r in group:
            left.annotate(f"{r['budget_db']:g} dB", (r["pesq"], 100 * r["kws-linear"]), fontsize=7,
                          textcoords="offset points", xytext=(4, 4))
            shade = plt.get_cmap("Blues" if shape == "l2" else "Oranges")(
                0.35 + 0.6 * (1 - (r["budget_db"] - 5) / 25))  # darker: the larger budget (fewer dB)
            right.plot(range(1, len(r["loss_curve"]) + 1), r["loss_curve"], color=shade,
                       linestyle="-" if shape == "l2" else "--", label=f"{shape} {r['budget_db']:g} dB")
    left.axhline(100 * rows[0]["kws-linear clean-trained"], color="grey", label="kws-linear, the clips clean")
    left.axhline(100 * rows[0]["kws-mlp clean-trained"], color="grey", linestyle="--", label="kws-mlp, the clips clean")
    left.axhline(30, color="red", linewidth=0.8, linestyle=":", label="robust target (30%)")
    left.axvline(3.5, color="red", linewidth=0.8, linestyle=":")
    left.set_xlabel("PESQ (narrow-band) of the poisoned clips")
    left.set_ylabel("trained on the poisoned clips, accuracy on clean test (%)")
    left.set_ylim(0, 102)
    left.grid(alpha=0.3)
    left.legend(fontsize=7, loc="upper left")
    right.set_xlabel("Adam step")
    right.set_ylabel("fit loss (squared sd to the target, per window)")
    right.grid(alpha=0.3)
    right.legend(fontsize=6, ncol=2)
    figure.suptitle(f"FSDD, {rows[0]['clips']} clips from {rows[0]['speakers']} speakers: per-clip targeted "
                    "poisons, white-box through the kws encoder", fontsize=10)
    figure.savefig(out, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=("families", "visible", "oracle", "push", "poison", "frontier", "report"))
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--snr", type=float, default=20.0)
    parser.add_argument("--steps", type=int, default=None, help="push: 60; poison: 30; frontier: 30 at most")
    parser.add_argument("--per-label", type=int, default=None, help="clips per digit (poison: 20; frontier: 10)")
    parser.add_argument("--points", default=FRONTIER_POINTS, help="frontier: shape:budget_db[:steps], comma-separated")
    parser.add_argument("--plot", default=None, help="report: also draw the frontier rows to this png")
    parser.add_argument("--key", type=int, default=0, help="frontier: draws the targets (a derangement)")
    args = parser.parse_args()
    if args.probe == "report":
        return report(args.plot)
    data = Fsdd()
    if args.probe == "families":
        run_families(data, args.keys)
    elif args.probe == "visible":
        run_visible(data, args.keys)
    elif args.probe == "oracle":
        run_oracle(data)
    elif args.probe == "push":
        run_push(data, args.keys, args.snr, args.steps or 60)
    elif args.probe == "frontier":
        run_frontier(data, args.points, args.steps or 30, args.per_label or 10, args.key)
    else:
        run_poison(data, args.snr, args.steps or 30, args.per_label or 20)


if __name__ == "__main__":
    main()
