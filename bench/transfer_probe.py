"""Issue 33, step 3: do per-clip poisons transfer to the kws encoder when fitted WITHOUT it?

Leave-kws-out (Fowl et al. 2021, "Adversarial examples make strong poisons"): from-scratch
surrogates are trained on FSDD's clean training split (2,700 clips; what a protector can train on
its own data): the audit's MFCC CNN (cnn-avg), its position-sensitive twin (cnn-flat) on log-mel
frames (cnn-avg on log-mel reached only 64% on the training set in 8 epochs), and the raw-waveform
M5 (poscuda_cli/audit/attackers.py), each on the audit's input (data.waves: 1 s from the start, RMS
0.1; features standardised with the training set's statistics; the MFCC / log-mel in torch, as
audit/fit.py's FrontEnd, so the fit differentiates the very features the surrogates learned).
Also resemblyzer's GE2E speaker encoder (differentiable port of its front end, its own LSTM)
with a logistic-regression head trained on the clean training split (``speaker``).
Then per-clip targeted perturbations (target: derangement(key)[label], as the white-box frontier)
are fitted against the ensemble's summed cross-entropy, with the frontier's budget
parameterisation (shaped: STFT re/im parameters in the unit disk times shaped_bound, ``budget_db``
under each bin; or l2), EOT in the loop (gain +-6 dB, white noise 30-50 dB under, +-10 ms shift),
Adam with a cosine schedule, all clips batched. The evaluation mirrors robust_probe.run_frontier:
the same speaker-diverse 100 clips, kws-linear / kws-mlp trained on the poisoned clips (the real
onnxruntime pipeline), tested on the clean test split; PESQ, STOI, SNR over every clip.

    python bench/transfer_probe.py --points shaped:10,shaped:5 --steps 30

Surrogates are cached in runs/transfer_surrogates.pt (git-ignored). Rows go to
bench/results/robust.jsonl with ``"probe": "transfer"``.
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from robust_probe import (HEADS, RATE, SPEAKER, Fsdd, budgeted, derangement, diverse_subset,  # noqa: E402
                          key_rng, quality_all, record)

from poscuda_cli import encoders  # noqa: E402
from poscuda_cli.audit import attackers, probes  # noqa: E402
from poscuda_cli.audit.data import waves  # noqa: E402
from poscuda_cli.audit.fit import FrontEnd  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

SECONDS = 1.0  # the audit's default crop
LENGTH = int(SECONDS * RATE)
CACHE = os.path.join(HERE, "..", "runs", "transfer_surrogates.pt")
# name: (architecture in attackers.build, input)
SURROGATES = {"mfcc-cnn": ("cnn-avg", "mfcc"), "logmel-cnn": ("cnn-flat", "logmel"), "raw-cnn": ("raw", "wave"),
              "speaker": ("ge2e+linear", "speaker")}
SPEAKER_8K = 12800  # one resemblyzer partial: 160 frames of 10 ms at 16 kHz = 1.6 s


class SpeakerHead(nn.Module):
    """resemblyzer's GE2E speaker encoder (its weights, its LSTM) under a differentiable port of
    its front end, and a logistic-regression head on the standardised embedding (as speaker-linear).
    Input: (clips, 25600) at 16 kHz, the volume already normalised (speaker_waves). The port
    leaves out resemblyzer's webrtcvad silence trimming (not differentiable; FSDD clips are short)
    and takes one 1.6-s partial (the first) per clip."""

    def __init__(self):
        super().__init__()
        import librosa
        from resemblyzer import VoiceEncoder, hparams

        self.encoder = VoiceEncoder("cpu", verbose=False).eval()
        self.n_fft = int(hparams.sampling_rate * hparams.mel_window_length / 1000)
        self.hop = int(hparams.sampling_rate * hparams.mel_window_step / 1000)
        self.register_buffer("basis", torch.tensor(librosa.filters.mel(sr=hparams.sampling_rate, n_fft=self.n_fft,
                                                                       n_mels=hparams.mel_n_channels),
                                                   dtype=torch.float32))
        self.register_buffer("mean", torch.zeros(256))
        self.register_buffer("std", torch.ones(256))
        self.head = nn.Linear(256, 10)

    def embed(self, w16):
        spec = torch.stft(w16, self.n_fft, self.hop, window=torch.hann_window(self.n_fft), center=True,
                          pad_mode="constant", return_complex=True)
        mel = (self.basis @ (spec.abs() ** 2)).transpose(1, 2)[:, :160]  # (clips, 160, 40)
        return self.encoder(mel)

    def forward(self, w16):
        return self.head((self.embed(w16) - self.mean) / self.std)


def speaker_waves(y, lengths, shifts):
    """(clips, L) at 8 kHz -> (clips, 25600) at 16 kHz as resemblyzer prepares a clip (less the
    VAD trim): moved by ``shifts``, the first 1.6 s, raised to -30 dBFS if quieter, FFT-upsampled."""
    index = torch.arange(SPEAKER_8K)[None, :] - shifts[:, None]
    valid = (index >= 0) & (index < lengths[:, None])
    out = torch.gather(y, 1, index.clamp(0, y.shape[1] - 1)) * valid
    rms = torch.sqrt((out ** 2).sum(1, keepdim=True) / valid.sum(1, keepdim=True).clamp_min(1)).clamp_min(1e-8)
    out = out * torch.clamp(10 ** (-30 / 20) / rms, min=1.0)  # normalize_volume(increase_only=True)
    spectrum = torch.fft.rfft(out, dim=1)
    padded = torch.cat([spectrum, torch.zeros(len(out), SPEAKER_8K + 1 - spectrum.shape[1], dtype=spectrum.dtype)], 1)
    return torch.fft.irfft(padded, 2 * SPEAKER_8K, dim=1) * 2


def surrogate(name, clean_waves, seed):
    arch, kind = SURROGATES[name]
    torch.manual_seed(seed)
    if kind == "speaker":
        return SpeakerHead()
    if kind == "wave":
        front = nn.Identity()
        shape = (LENGTH,)
    else:
        front = FrontEnd(RATE, clean_waves, kind)
        with torch.no_grad():
            shape = tuple(front(torch.zeros(1, LENGTH)).shape[1:])
    return nn.Sequential(front, attackers.build(arch, shape, 10))


@torch.no_grad()
def accuracy(model, x, y, batch=256):
    model.eval()
    right = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return right / len(x)


def train(model, x, y, epochs, seed, batch_size=64, log=None):
    """The audit's loop (Adam 1e-3, batch 64, cross-entropy) on fixed inputs; features computed
    once (the front end is fixed), the classifier trained on them."""
    front, net = model[0], model[1]
    with torch.no_grad():
        feats = torch.cat([front(x[i:i + 256]) for i in range(0, len(x), 256)])
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(feats[idx]), y[idx]).backward()
            optimiser.step()
        if log:
            log(epoch)
    model.eval()
    return model


def train_speaker(model, w16, y, steps=300):
    """The head on the frozen encoder's standardised embeddings (full-batch Adam, L2 1e-3)."""
    with torch.no_grad():
        emb = torch.cat([model.embed(w16[i:i + 128]) for i in range(0, len(w16), 128)])
    model.mean.copy_(emb.mean(0))
    model.std.copy_(emb.std(0) + 1e-6)
    z = (emb - model.mean) / model.std
    optimiser = torch.optim.Adam(model.head.parameters(), lr=0.05, weight_decay=1e-3)
    for _ in range(steps):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model.head(z), y).backward()
        optimiser.step()
    return model.eval()


def surrogate_waves(y, lengths, shifts):
    """(clips, L) at 8 kHz, zero past each clip's length -> (clips, LENGTH) as data.waves makes
    them (from the start, cropped to 1 s, RMS 0.1 over what is kept), each clip first moved by
    ``shifts`` samples (zero-filled)."""
    index = torch.arange(LENGTH)[None, :] - shifts[:, None]
    valid = (index >= 0) & (index < lengths[:, None])
    out = torch.gather(y, 1, index.clamp(0, y.shape[1] - 1)) * valid
    rms = torch.sqrt((out ** 2).sum(1, keepdim=True) / valid.sum(1, keepdim=True).clamp_min(1))
    return out * (0.1 / rms.clamp_min(1e-8))


def prepare_for(name):
    """What surrogate ``name`` eats, from (clips, L) 8-kHz floats, their lengths and shifts."""
    return speaker_waves if SURROGATES[name][1] == "speaker" else surrogate_waves


def fit_transfer(models, x, lengths, targets, shape, budget_db, steps, rng, lr=0.2):
    """Per-clip perturbations (clips, L) pushing every surrogate in ``models`` [(prepare, model)] to classify each
    clip as ``targets`` (summed cross-entropy), with robust_probe.fit_poisons' budgets, EOT and
    optimiser. Returns (perturbations, loss per step)."""
    count, length = x.shape
    mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    params, perturbation, project = budgeted(x, lengths, shape, budget_db)
    optimiser = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps, eta_min=lr / 10)
    rms = torch.sqrt((x ** 2).sum(1) / lengths.float())
    curve = []
    for _, model in models:
        model.eval()  # batch norm on running statistics, no dropout
        for p in model.parameters():
            p.requires_grad_(False)
    for step in range(steps):
        gain = torch.from_numpy(10 ** (rng.uniform(-6, 6, count) / 20)).float()[:, None]
        noise_db = torch.from_numpy(rng.uniform(30, 50, count)).float()[:, None]
        shifts = torch.from_numpy(rng.integers(-80, 81, count))
        noise = torch.from_numpy(rng.standard_normal((count, length))).float() * rms[:, None] * 10 ** (-noise_db / 20)
        optimiser.zero_grad()
        y = (x + perturbation()) * gain + noise * mask
        losses = [nn.functional.cross_entropy(model(prepare(y, lengths, shifts)), targets) for prepare, model in models]
        loss = sum(losses)
        loss.backward()
        optimiser.step()
        schedule.step()
        project()
        curve.append(round(float(loss), 3))
        print(f"  step {step + 1}: loss {float(loss):.3f} ({', '.join(f'{float(v):.2f}' for v in losses)})", flush=True)
    with torch.no_grad():
        return perturbation().detach(), curve


def as_tensor(floats):
    lengths = torch.tensor([len(f) for f in floats])
    x = torch.zeros(len(floats), int(lengths.max()))
    for j, f in enumerate(floats):
        x[j, :len(f)] = torch.from_numpy(f).float()
    return x, lengths


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", default="shaped:10", help="shape:budget_db, comma-separated")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=8, help="surrogate training epochs on the 2,700 clean clips")
    parser.add_argument("--surrogates", default=",".join(SURROGATES))
    parser.add_argument("--per-label", type=int, default=10)
    parser.add_argument("--key", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subset-surrogates", action="store_true",
                        help="also train each surrogate afresh on the 100 poisoned (and clean) clips")
    parser.add_argument("--train-only", action="store_true", help="train (and cache) the surrogates, then stop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.surrogates.split(",")
    started = time.perf_counter()
    data = Fsdd()
    print(f"FSDD read and embedded in {time.perf_counter() - started:.0f} s", flush=True)
    train_w = waves(data.train, RATE, SECONDS)
    test_w = waves(data.test, RATE, SECONDS)
    x_train, x_test = torch.from_numpy(train_w), torch.from_numpy(test_w)
    y_train, y_test = torch.from_numpy(data.y_train).long(), torch.from_numpy(data.y_test).long()

    raw_train, raw_test = as_tensor([data.clean_floats(i) for i in range(len(data.train.data))]), \
        as_tensor([d[:, 0] / 32768.0 for d in data.test.data])

    def inputs(name, raw):
        x, lengths = raw
        if SURROGATES[name][1] != "speaker":  # data.waves (the audit's input) for the CNNs
            return None
        with torch.no_grad():
            return speaker_waves(x, lengths, torch.zeros(len(x), dtype=torch.long))

    cached = torch.load(CACHE) if os.path.exists(CACHE) else {}
    models, clean_accuracy = {}, {}
    for name in names:
        model = surrogate(name, train_w, args.seed)
        epochs = 0 if SURROGATES[name][1] == "speaker" else args.epochs
        if name in cached and cached[name]["epochs"] == epochs and cached[name].get("arch") == SURROGATES[name][0]:
            model.load_state_dict(cached[name]["state"])
        else:
            t0 = time.perf_counter()
            if epochs:
                train(model, x_train, y_train, epochs, args.seed,
                      log=lambda e: print(f"  {name} epoch {e + 1}: {time.perf_counter() - t0:.0f} s", flush=True))
            else:
                train_speaker(model, inputs(name, raw_train), y_train)
                print(f"  {name}: head trained in {time.perf_counter() - t0:.0f} s", flush=True)
            cached[name] = {"epochs": epochs, "arch": SURROGATES[name][0], "state": model.state_dict()}
            os.makedirs(os.path.dirname(CACHE), exist_ok=True)
            torch.save(cached, CACHE)
        models[name] = model.eval()
        test_in = x_test if epochs else inputs(name, raw_test)
        clean_accuracy[name] = round(accuracy(model, test_in, y_test), 4)
        print(f"{name}: clean test accuracy {clean_accuracy[name]}", flush=True)
    if args.train_only:
        return

    pick = diverse_subset(data, args.per_label, args.seed)
    speakers = {SPEAKER.match(data.train.relpaths[i]).group(1) for i in pick}
    perm = derangement(args.key)
    targets = torch.from_numpy(perm[data.y_train[pick]]).long()
    clean = data.protected(lambda x, i: x, pick)
    clean_heads = data.attack(clean, pick)
    print(f"subset: {len(pick)} clips, {len(speakers)} speakers; clean-trained {clean_heads}; targets {perm.tolist()}",
          flush=True)
    x, lengths = as_tensor([data.clean_floats(i) for i in pick])
    y_pick = torch.from_numpy(data.y_train[pick]).long()
    for point in args.points.split(","):
        shape, budget_db = point.split(":")
        budget_db = float(budget_db)
        print(f"{shape} {budget_db} dB, fitted on {names}", flush=True)
        t0 = time.perf_counter()
        delta, curve = fit_transfer([(prepare_for(n), m) for n, m in models.items()], x, lengths, targets, shape, budget_db, args.steps,
                                    key_rng(f"transfer-eot:{shape}:{budget_db}", args.key))
        fit_seconds = time.perf_counter() - t0
        poisoned = {int(i): np.clip((x[j, :lengths[j]] + delta[j, :lengths[j]]).numpy().astype(np.float64), -1, 1)
                    for j, i in enumerate(pick)}
        protected = data.protected(lambda x, i: poisoned[i], pick)
        embedded = encoders.embed("kws", protected)
        heads = {h: probes.train_and_test(h, embedded, data.y_train[pick], data.e_test, data.y_test)[1] for h in HEADS}
        print(f"  kws heads on the poisoned clips: {heads}", flush=True)
        pesq_nb, stoi, snr, n_pesq, n_stoi = quality_all(clean, protected)
        # the surrogates on the poisoned clips as written (int16, no EOT): how often they say the target
        written = torch.from_numpy(waves(protected, RATE, SECONDS))
        written_raw = as_tensor([d[:, 0] / 32768.0 for d in protected.data])
        fooled = {n: round(accuracy(m, written if SURROGATES[n][1] != "speaker" else inputs(n, written_raw), targets), 4)
                  for n, m in models.items()}
        print(f"  surrogates say the target on the poisoned clips: {fooled}", flush=True)
        # fresh surrogates of each architecture trained on the 100 poisoned (and the 100 clean) clips
        small = {}
        clean_w = torch.from_numpy(waves(clean, RATE, SECONDS))
        clean_raw = as_tensor([d[:, 0] / 32768.0 for d in clean.data])
        for n in names if args.subset_surrogates else ():
            if SURROGATES[n][1] == "speaker":
                on_poison = train_speaker(surrogate(n, None, 0), inputs(n, written_raw), y_pick)
                on_clean = train_speaker(surrogate(n, None, 0), inputs(n, clean_raw), y_pick)
                test_in = inputs(n, raw_test)
            else:
                on_poison = train(surrogate(n, train_w, args.seed + 1), written, y_pick, 30, args.seed + 1)
                on_clean = train(surrogate(n, train_w, args.seed + 1), clean_w, y_pick, 30, args.seed + 1)
                test_in = x_test
            small[n] = {"poisoned": round(accuracy(on_poison, test_in, y_test), 4),
                        "clean-trained": round(accuracy(on_clean, test_in, y_test), 4)}
        record({"probe": "transfer", "fitted_on": names, "attacked_with": "kws", "shape": shape,
                "budget_db": budget_db, "key": args.key,
                **{h: round(a, 4) for h, a in heads.items()},
                **{f"{h} clean-trained": round(a, 4) for h, a in clean_heads.items()},
                "pesq": round(pesq_nb, 2), "stoi": round(stoi, 3), "snr_db": round(snr, 1),
                "pesq_clips": n_pesq, "stoi_clips": n_stoi, "steps": len(curve),
                "seconds_per_clip": round(fit_seconds / len(pick), 2), "speakers": len(speakers), "clips": len(pick),
                "surrogate_epochs": args.epochs, "surrogate_clean_accuracy": clean_accuracy,
                "surrogates_say_target_on_poisoned": fooled,
                **({"surrogate_trained_on_subset_30_epochs": small} if small else {}), "loss_curve": curve})


if __name__ == "__main__":
    main()
