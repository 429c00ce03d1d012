"""OUT's manifest and lock: what is finished, with which key, and who is writing.

The manifest (``OUT/.poscuda-manifest.jsonl``) is a header line (tool version, key
fingerprint, parameters; never the secret) followed by one line per finished file,
appended and flushed as each file lands. A rerun skips files whose input size and
mtime match their line and whose output still has the recorded size; a torn last
line (a killed run) is ignored. At the end of a run the manifest is rewritten in
path order. ``OUT/.poscuda.lock`` holds an flock while a run is writing.
"""

import fcntl
import json
import os
import time
from dataclasses import dataclass

from . import __version__
from .errors import ManifestError

MANIFEST_NAME = ".poscuda-manifest.jsonl"
LOCK_NAME = ".poscuda.lock"
NAMES = "surrogateescape"  # a path that is not UTF-8 is written as the bytes the file system holds


@dataclass(frozen=True)
class Record:
    path: str
    size: int
    mtime_ns: int
    out_size: int
    label: str = ""  # the label it was protected as ("" for a copied file)

    def to_json(self):
        return json.dumps({"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns,
                           "out_size": self.out_size, "label": self.label}, ensure_ascii=False)


# the options that change what protect writes, as the command line names them
OPTION_NAMES = {"format": "--format", "labels": "label source (folders, --labels, --label-from)",
                "audio_column": "--audio-column", "label_column": "--label-column", "label_member": "--label-member"}


class Manifest:
    def __init__(self, out_dir, key, options, force=False):
        """``options``: every option besides the key that changes what is written (format, label
        source, columns); a rerun with others is refused like one with another key."""
        self.path = os.path.join(out_dir, MANIFEST_NAME)
        self.header = {"poscuda": __version__, "key_fingerprint": key.fingerprint,
                       "params": key.params.to_dict(), "options": options}
        self.records = {}
        header, records = _read(self.path)
        if header is not None:
            other = _other_run(header, self.header)
            if other is None:
                self.records = records
            elif not force:
                raise ManifestError(f"{out_dir}: {other}")
        self._rewrite()
        self._handle = open(self.path, "a", encoding="utf-8", errors=NAMES)

    def is_done(self, entry, stat, out_path):
        """Whether ``entry`` was finished from this very input, as the same label, and its output is intact."""
        record = self.records.get(entry.relpath)
        if record is None or record.size != stat.st_size or record.mtime_ns != stat.st_mtime_ns:
            return False
        if record.label != entry.label:
            return False
        try:
            return os.path.getsize(out_path) == record.out_size
        except OSError:
            return False

    def add(self, record):
        self.records[record.path] = record
        try:
            self._handle.write(record.to_json() + "\n")
            self._handle.flush()
        except OSError as exc:
            raise ManifestError(f"{self.path}: cannot record progress ({exc.strerror}); "
                                "free space and rerun to resume") from None

    def close(self):
        """Rewrite in path order, so the same input gives the same manifest whatever the order of work."""
        self._handle.close()
        self._rewrite()

    def _rewrite(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8", errors=NAMES) as handle:
            handle.write(json.dumps(self.header, sort_keys=True) + "\n")
            for path in sorted(self.records):
                handle.write(self.records[path].to_json() + "\n")
        os.replace(tmp, self.path)


def _other_run(header, mine):
    """What differs between OUT's run (its manifest ``header``) and this one, as a message; None if nothing."""
    if header.get("key_fingerprint") != mine["key_fingerprint"]:
        return (f"was protected with key {header.get('key_fingerprint')}, not {mine['key_fingerprint']}; "
                "use the same key to resume, or --force to redo OUT with this key")
    if header.get("poscuda") != mine["poscuda"]:
        return (f"was protected by poscuda {header.get('poscuda')}, not {mine['poscuda']}, whose output can differ; "
                "use that version to resume, or --force to redo OUT with this one")
    was, now = header.get("options", {}), mine["options"]
    for name in sorted(set(was) | set(now)):
        if was.get(name) != now.get(name):
            return (f"was protected with {OPTION_NAMES.get(name, name)} {_shown(was.get(name))}, not "
                    f"{_shown(now.get(name))}; rerun with the same options to resume, or --force to redo OUT")
    return None


def _shown(value):
    return "(default)" if value is None else repr(value)


def _read(path):
    try:
        with open(path, encoding="utf-8", errors=NAMES) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return None, {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc})") from None
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError:
        raise ManifestError(f"{path}: damaged manifest header; remove OUT or use a new one") from None
    records = {}
    for line in lines[1:]:
        try:
            item = json.loads(line)
            record = Record(str(item["path"]), int(item["size"]), int(item["mtime_ns"]), int(item["out_size"]),
                            str(item.get("label", "")))
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by an interrupted run: that file is simply redone
        records[record.path] = record
    return header, records


class OutputLock:
    """Exclusive lock on OUT: a second run on the same OUT refuses instead of interleaving.

    Forked workers share the lock (the same open file), so OUT is free only once no process of
    the run that holds it is left. Workers die with their run (executors._die_with), a moment
    after it: a rerun started at once waits up to ``wait`` seconds for that moment.
    """

    def __init__(self, out_dir, wait=2.0):
        self.path = os.path.join(out_dir, LOCK_NAME)
        self.wait = wait
        self._fd = None

    def __enter__(self):
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self._fd)
                    raise ManifestError(f"{os.path.dirname(self.path)}: another poscuda run is writing here "
                                        f"(still after {self.wait:g} s)") from None
                time.sleep(0.02)

    def __exit__(self, *exc):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
