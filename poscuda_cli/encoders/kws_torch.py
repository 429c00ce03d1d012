"""The kws speech_embedding encoder (kws.py) in torch, for gradients.

The two ONNX graphs that openwakeword 0.4.0 ships are run node by node in torch (the dozen op
types they use), so the weights and arithmetic are the encoder's own: on FSDD clips the
embeddings match onnxruntime's to 5e-5 (of values up to 72; tests/test_encoders.py). For the
robust probes (bench/robust_probe.py); needs torch and the ``onnx`` package (the [encoders] extra).
"""

import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from .kws import KWS_STEP, KWS_WINDOW, model_paths


class Graph(torch.nn.Module):
    """An ONNX graph evaluated in torch."""

    def __init__(self, path, ops=None):
        super().__init__()
        self.ops = {**_OPS, **(ops or {})}
        model = onnx.load(path)
        attributes = lambda node: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}  # noqa: E731
        self.nodes = [(n.op_type, list(n.input), n.output[0], attributes(n)) for n in model.graph.node]
        self.values = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
        for op, _, out, attrs in self.nodes:
            if op == "Constant":
                self.values[out] = torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy())
        self.input, self.output = model.graph.input[0].name, model.graph.output[0].name

    def forward(self, x):
        values = {**self.values, self.input: x}
        for op, inputs, out, a in self.nodes:
            if op != "Constant":
                values[out] = self.ops[op](*[values.get(name) for name in inputs], **a)
        return values[self.output]


def _pad(x, pads, *_, **__):
    p = pads.tolist()
    half = len(p) // 2
    return F.pad(x, [v for d in reversed(range(half)) for v in (p[d], p[d + half])])


def _conv(x, w, b=None, pads=None, strides=1, **_):
    pads = pads or [0] * (2 * (w.dim() - 2))
    conv = F.conv1d if w.dim() == 3 else F.conv2d
    return conv(x, w, b, stride=strides, padding=tuple(pads[:len(pads) // 2]))


_OPS = {
    "Pad": _pad,
    "Reshape": lambda x, shape, **_: x.reshape([s if s else x.shape[k] for k, s in enumerate(shape.tolist())]),
    "Conv": _conv,
    "Relu": lambda x, **_: F.relu(x),
    "LeakyRelu": lambda x, alpha, **_: F.leaky_relu(x, alpha),
    "BatchNormalization": lambda x, s, b, m, v, epsilon, **_: F.batch_norm(x, m, v, s, b, False, 0.0, epsilon),
    "Max": lambda x, y, **_: torch.maximum(x, y),
    "MaxPool": lambda x, kernel_shape, strides, **_: F.max_pool2d(x, kernel_shape, strides),
    "Unsqueeze": lambda x, axes, **_: x.unsqueeze(int(axes.reshape(-1)[0])),
    "Transpose": lambda x, perm, **_: x.permute(perm),
    "Pow": lambda x, y, **_: x ** y,
    "Add": lambda x, y, **_: x + y,
    "Sub": lambda x, y, **_: x - y,
    "Mul": lambda x, y, **_: x * y,
    "Div": lambda x, y, **_: x / y,
    "MatMul": lambda x, y, **_: x @ y,
    "Log": lambda x, **_: torch.log(x),
    "Clip": lambda x, low=None, high=None, **_: torch.clamp(x, low, high),
    "ReduceMax": lambda x, **_: x.max(),
    "Cast": lambda x, **_: x.float(),
}


class Kws(torch.nn.Module):
    """(clips, samples) at 16 kHz in int16 units -> (clips, windows, 96), as kws.embed.

    ``batched``: the front end runs on all clips in one call, its 80 dB floor taken under each
    clip's own maximum (what one call per clip gives, as onnx is run) rather than the batch's."""

    def __init__(self, batched=False):
        super().__init__()
        mel, embedding = model_paths()
        self.batched = batched
        per_clip = {"ReduceMax": lambda x, **_: x.amax(dim=tuple(range(1, x.dim())), keepdim=True)}
        self.mel, self.net = Graph(mel, per_clip if batched else None), Graph(embedding)
        for tensor in (*self.mel.values.values(), *self.net.values.values()):
            tensor.requires_grad_(False)

    def forward(self, waves):
        if self.batched:
            mels = self.mel(waves)[:, 0] / 10 + 2
        else:
            mels = torch.stack([self.mel(w[None])[0, 0] for w in waves]) / 10 + 2  # one clip per call, as onnx
        windows = mels.unfold(1, KWS_WINDOW, KWS_STEP)  # (clips, windows, 32, 76)
        count, per_clip = windows.shape[:2]
        flat = windows.permute(0, 1, 3, 2).reshape(count * per_clip, KWS_WINDOW, 32, 1)
        return self.net(flat).reshape(count, per_clip, 96)
