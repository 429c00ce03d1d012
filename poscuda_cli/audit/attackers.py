"""Attacker models for ``poscuda audit`` and their training loop (torch: ``pip install 'poscuda[audit]'``).

Each attacker is what someone training on a published dataset would plausibly use:

* ``cnn-avg``     -- 2-D CNN on MFCC, global average pooling (shift-invariant)
* ``cnn-flat``    -- the same convolutions ending in flatten + dense (position-sensitive)
* ``raw``         -- M5-style 1-D CNN on the waveform
* ``lstm``        -- 2-layer LSTM on MFCC frames
* ``transformer`` -- Transformer encoder on log-mel frames with learned positional embeddings

``INPUTS`` says which representation each model eats; audit computes them once.
"""

import numpy as np
import torch
from torch import nn

from .models import SCRATCH

INPUTS = SCRATCH
MODELS = tuple(INPUTS)


def _conv2d(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))


class MfccCnn(nn.Module):
    def __init__(self, shape, classes, pool):
        super().__init__()
        self.body = nn.Sequential(_conv2d(1, 32), _conv2d(32, 64), _conv2d(64, 128))
        self.pool = pool
        if pool:
            features = 128
        else:
            with torch.no_grad():
                features = self.body(torch.zeros(1, 1, *shape)).numel()
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(features, classes))

    def forward(self, x):  # (batch, frames, coeffs)
        h = self.body(x.unsqueeze(1))
        h = h.mean(dim=(2, 3)) if self.pool else h.flatten(1)
        return self.head(h)


class M5(nn.Module):
    def __init__(self, classes, width=32):
        super().__init__()

        def block(cin, cout, kernel, stride=1):
            return [nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2),
                    nn.BatchNorm1d(cout), nn.ReLU(), nn.MaxPool1d(4)]

        self.body = nn.Sequential(*block(1, width, 80, 4), *block(width, width, 3),
                                  *block(width, 2 * width, 3), *block(2 * width, 2 * width, 3))
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x):  # (batch, samples)
        return self.head(self.body(x.unsqueeze(1)).mean(dim=2))


class Lstm(nn.Module):
    def __init__(self, dims, classes, hidden=96):
        super().__init__()
        self.lstm = nn.LSTM(dims, hidden, num_layers=2, batch_first=True, dropout=0.1)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):  # (batch, frames, dims)
        # mean over time: the last state alone forgets speech behind the zero padding
        return self.head(self.lstm(x)[0].mean(dim=1))


class Transformer(nn.Module):
    def __init__(self, shape, classes, width=64):
        super().__init__()
        frames, dims = shape
        self.embed = nn.Linear(dims, width)
        self.position = nn.Parameter(torch.randn(1, frames, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, classes)

    def forward(self, x):  # (batch, frames, dims)
        return self.head(self.encoder(self.embed(x) + self.position).mean(dim=1))


def build(name, shape, classes):
    if name == "cnn-avg":
        return MfccCnn(shape, classes, pool=True)
    if name == "cnn-flat":
        return MfccCnn(shape, classes, pool=False)
    if name == "raw":
        return M5(classes)
    if name == "lstm":
        return Lstm(shape[-1], classes)
    if name == "transformer":
        return Transformer(shape, classes)
    raise ValueError(f"unknown attacker {name!r}; choose from {', '.join(MODELS)}")


def _shift(batch, generator, fraction):
    """Random circular-free time shift: each example moved by up to +-fraction of its length, zero-filled."""
    length = batch.shape[1]
    limit = int(length * fraction)
    out = torch.zeros_like(batch)
    offsets = torch.randint(-limit, limit + 1, (batch.shape[0],), generator=generator)
    for i, offset in enumerate(offsets.tolist()):
        if offset >= 0:
            out[i, offset:] = batch[i, : length - offset]
        else:
            out[i, :offset] = batch[i, -offset:]
    return out


def train_and_test(name, train_x, train_y, test_x, test_y, classes, epochs=12, seed=0,
                   shift=0.0, batch_size=64, progress=None, batches=None):
    """Train attacker ``name`` from scratch; return (train accuracy, test accuracy).

    ``train_x`` holds the training inputs. ``batches(indices, rng)``, if given, makes each
    training batch instead (an augmenting defense); accuracies are measured on ``train_x``.
    ``shift`` > 0 trains with random time shifts of up to that fraction of the input.
    ``progress`` is called once per epoch.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_x = torch.as_tensor(np.ascontiguousarray(train_x), dtype=torch.float32)
    test_x = torch.as_tensor(np.ascontiguousarray(test_x), dtype=torch.float32)
    train_y = torch.as_tensor(train_y, dtype=torch.long)
    test_y = torch.as_tensor(test_y, dtype=torch.long)
    model = build(name, tuple(train_x.shape[1:]), classes)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if batches is None:
                batch = train_x[idx]
            else:
                batch = torch.as_tensor(np.ascontiguousarray(batches(idx.numpy(), rng)), dtype=torch.float32)
            if shift > 0:
                batch = _shift(batch, generator, shift)
            optimiser.zero_grad()
            loss_fn(model(batch), train_y[idx]).backward()
            optimiser.step()
        if progress:
            progress()
    return _accuracy(model, train_x, train_y), _accuracy(model, test_x, test_y)


@torch.no_grad()
def _accuracy(model, x, y, batch_size=256):
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        correct += (model(x[start:start + batch_size]).argmax(1) == y[start:start + batch_size]).sum().item()
    return correct / max(len(x), 1)
