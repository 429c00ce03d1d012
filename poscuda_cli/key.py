"""The secret key: generation, the key file, its fingerprint, and per-label derivation.

A key is a 256-bit secret plus public parameters. Everything a label needs (its
filter and its patch layout) is drawn from numpy's PCG64 seeded with
HMAC-SHA256(secret, label), so one key serves any set of labels and one label's
material says nothing about another's. A fitted key (``keygen --fit``) also holds a
learned gain curve per label, used instead of the drawn filter for those labels.
"""

import hashlib
import hmac
import json
import os
import secrets
import stat
import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import __version__
from .errors import KeyFileError, PoscudaError
from .signature import filters, layout
from .signature.params import Params

FORMAT = "poscuda-key"
VERSION = 3  # what this poscuda writes (0.3 on): every parameter listed, a "fitted" section optional
# Older key formats: 1 (poscuda 0.1 and 0.2) and 2 (0.2, a key with a "fitted" section). Parameters
# added after 0.1 may be missing from them; such a key means what it meant when it was written, so
# a missing field takes the value that reproduces that version's output (its feature off, 0.1's
# "hz" notch spacing), pinned here, never the dataclass's defaults, which follow the default level.
FITTED_VERSION = 2
_BEFORE_0_3 = {"notch_spacing": "hz", "low_notches": 0, "low_notch_low_hz": 200.0, "low_notch_high_hz": 1000.0,
               "low_notch_width_hz": 150.0, "echoes": 0, "echo_gain": 0.5, "echo_min_ms": 1.0, "echo_max_ms": 5.0,
               "fit_snr_db": 15.0}
OLD_KEY_DEFAULTS = {1: _BEFORE_0_3, FITTED_VERSION: _BEFORE_0_3}
GAIN_RANGE_DB = (-60.0, 20.0)


@dataclass(frozen=True)
class Fitted:
    """Per-label gain curves learned by ``keygen --fit``: dB at ``anchors_hz`` for each label."""

    anchors_hz: tuple
    curves: tuple  # ((label, (dB, ...)), ...) sorted by label: hashable, so plans can be cached

    def to_dict(self):
        return {"anchors_hz": list(self.anchors_hz), "gains_db": {label: list(g) for label, g in self.curves}}

    @classmethod
    def from_dict(cls, data, source="key"):
        from .labels import check_label

        try:
            anchors = tuple(float(f) for f in data["anchors_hz"])
            curves = tuple(sorted((check_label(str(label), f"{source}: fitted"), tuple(float(g) for g in gains))
                                  for label, gains in data["gains_db"].items()))
        except (TypeError, ValueError, KeyError, AttributeError, PoscudaError) as exc:
            raise KeyFileError(f"{source}: field 'fitted' is malformed ({exc})") from None
        if len(anchors) < 2 or anchors[0] != 0.0 or any(b <= a for a, b in zip(anchors, anchors[1:])):
            raise KeyFileError(f"{source}: field 'fitted': anchors_hz must rise from 0")
        low, high = GAIN_RANGE_DB
        for label, gains in curves:
            if len(gains) != len(anchors) or not all(low <= g <= high for g in gains):
                raise KeyFileError(f"{source}: field 'fitted': label {label!r} needs {len(anchors)} gains "
                                   f"in [{low:g}, {high:g}] dB")
        return cls(anchors, curves)


@dataclass(frozen=True)
class Key:
    secret: bytes
    params: Params
    fitted: Fitted = None

    @property
    def fingerprint(self):
        """Short public id of the key: safe for manifests and logs, reveals nothing of the secret."""
        fitted = _canonical(self.fitted.to_dict()) if self.fitted else b""
        digest = hashlib.sha256(b"poscuda-fingerprint\0" + self.secret + _canonical(self.params.to_dict()) + fitted)
        return digest.hexdigest()[:16]

    def label_plan(self, label):
        return _label_plan(self.secret, self.params, self.fitted, label)

    def to_json(self):
        body = {"format": FORMAT, "version": VERSION,
                "secret": self.secret.hex(), "params": self.params.to_dict()}
        if self.fitted:
            body["fitted"] = self.fitted.to_dict()
        body["checksum"] = _checksum(body)
        return json.dumps(body, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class LabelPlan:
    """What protection does to every clip of one label."""

    label: str
    filter: filters.FilterSpec
    layout: layout.LayoutSpec


@lru_cache(maxsize=4096)
def _label_plan(secret, params, fitted, label):
    seed = hmac.new(secret, label_bytes(label), hashlib.sha256).digest()
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))
    drawn, where = filters.draw(params, rng), layout.draw(params, rng)
    drawn = filters.draw_extras(drawn, params, rng)
    curve = dict(fitted.curves).get(label) if fitted else None
    if curve is not None:
        drawn = filters.FilterSpec("curve", curve, filter_ms=params.filter_ms, anchors_hz=fitted.anchors_hz)
    return LabelPlan(label, drawn, where)


def label_bytes(label):
    """A label as bytes: UTF-8, and a folder name that is not UTF-8 as the bytes the file system holds
    (Python keeps those as surrogate escapes, as os.fsencode does), so every name has its own seed."""
    return label.encode("utf-8", "surrogateescape")


def generate_key(params=None, fitted=None):
    return Key(secrets.token_bytes(32), (params or Params()).validate(), fitted)


def write_key(key, path, force=False):
    """Write the key atomically with mode 0600; ``-`` writes to stdout."""
    text = key.to_json()
    if str(path) == "-":
        sys.stdout.write(text)
        return
    path = os.fspath(path)
    if os.path.exists(path) and not force:
        raise KeyFileError(f"{path}: already exists (use --force to overwrite)")
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_key(path, warn=None):
    """Read and validate a key file; ``warn`` receives a message if others can read it."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file ({exc.strerror})") from None
    if warn and mode & (stat.S_IRGRP | stat.S_IROTH):
        warn(f"warning: key file {path} is readable by other users (chmod 600 it)")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: not a poscuda key (invalid JSON: {exc})") from None
    return key_from_dict(body, path)


def key_from_dict(body, source="key"):
    if not isinstance(body, dict):
        raise KeyFileError(f"{source}: not a poscuda key (expected a JSON object)")
    for field in ("format", "version", "secret", "params", "checksum"):
        if field not in body:
            raise KeyFileError(f"{source}: missing field {field!r}")
    if body["format"] != FORMAT:
        raise KeyFileError(f"{source}: field 'format' is {body['format']!r}, expected {FORMAT!r}")
    version = body["version"]
    number = isinstance(version, int) and not isinstance(version, bool)
    if number and version > VERSION:
        raise KeyFileError(f"{source}: key format {version} was written by a newer poscuda; this one "
                           f"({__version__}) reads formats 1 to {VERSION}: upgrade poscuda")
    if not number or version not in (VERSION, *OLD_KEY_DEFAULTS):
        raise KeyFileError(f"{source}: field 'version' is {version!r}; this poscuda reads 1 to {VERSION}")
    if version != VERSION and (version == FITTED_VERSION) != ("fitted" in body):
        raise KeyFileError(f"{source}: field 'fitted' goes with version {FITTED_VERSION}, and only with it")
    secret = body["secret"]
    if not isinstance(secret, str) or len(secret) != 64:
        raise KeyFileError(f"{source}: field 'secret' must be 64 hex digits")
    try:
        secret_bytes = bytes.fromhex(secret)
    except ValueError:
        raise KeyFileError(f"{source}: field 'secret' must be 64 hex digits") from None
    try:
        params = Params.from_dict(body["params"], OLD_KEY_DEFAULTS.get(version))
    except KeyFileError as exc:
        raise KeyFileError(f"{source}: {exc}") from None
    fitted = Fitted.from_dict(body["fitted"], source) if "fitted" in body else None
    if not hmac.compare_digest(str(body["checksum"]), _checksum(body)):
        raise KeyFileError(f"{source}: field 'checksum' does not match: the key was edited or damaged")
    return Key(secret_bytes, params, fitted)


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _checksum(body):
    """SHA-256 of the canonical JSON of every field but the checksum itself."""
    fields = ("format", "version", "secret", "params", "fitted")
    return hashlib.sha256(_canonical({k: body[k] for k in fields if k in body})).hexdigest()
