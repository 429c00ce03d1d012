"""The secret key: generation, the key file, its fingerprint, and per-label derivation.

A key is a 256-bit secret plus public parameters. Everything a label needs (its
filter and its patch layout) is drawn from numpy's PCG64 seeded with
HMAC-SHA256(secret, label), so one key serves any set of labels and one label's
material says nothing about another's.
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

from . import filters, layout
from .errors import KeyFileError
from .params import Params

FORMAT = "poscuda-key"
VERSION = 1


@dataclass(frozen=True)
class Key:
    secret: bytes
    params: Params

    @property
    def fingerprint(self):
        """Short public id of the key: safe for manifests and logs, reveals nothing of the secret."""
        digest = hashlib.sha256(b"poscuda-fingerprint\0" + self.secret + _canonical(self.params.to_dict()))
        return digest.hexdigest()[:16]

    def label_plan(self, label):
        return _label_plan(self.secret, self.params, label)

    def to_json(self):
        body = {"format": FORMAT, "version": VERSION, "secret": self.secret.hex(),
                "params": self.params.to_dict()}
        body["checksum"] = _checksum(body)
        return json.dumps(body, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class LabelPlan:
    """What protection does to every clip of one label."""

    label: str
    filter: filters.FilterSpec
    layout: layout.LayoutSpec


@lru_cache(maxsize=4096)
def _label_plan(secret, params, label):
    seed = hmac.new(secret, label.encode("utf-8"), hashlib.sha256).digest()
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))
    return LabelPlan(label, filters.draw(params, rng), layout.draw(params, rng))


def generate_key(params=None):
    return Key(secrets.token_bytes(32), (params or Params()).validate())


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
    if body["version"] != VERSION:
        raise KeyFileError(f"{source}: field 'version' is {body['version']!r}; this poscuda reads {VERSION}")
    secret = body["secret"]
    if not isinstance(secret, str) or len(secret) != 64:
        raise KeyFileError(f"{source}: field 'secret' must be 64 hex digits")
    try:
        secret_bytes = bytes.fromhex(secret)
    except ValueError:
        raise KeyFileError(f"{source}: field 'secret' must be 64 hex digits") from None
    params = Params.from_dict(body["params"])
    expected = _checksum({k: body[k] for k in ("format", "version", "secret", "params")})
    if not hmac.compare_digest(str(body["checksum"]), expected):
        raise KeyFileError(f"{source}: field 'checksum' does not match: the key was edited or damaged")
    return Key(secret_bytes, params)


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _checksum(body):
    return hashlib.sha256(_canonical({k: body[k] for k in ("format", "version", "secret", "params")})).hexdigest()
