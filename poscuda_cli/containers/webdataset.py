"""WebDataset tar shards: each sample is a run of consecutive members sharing a key (the member
name up to the first dot of its file name), e.g. ``s0001.flac`` + ``s0001.cls``. The label is the
text of the sample's ``.cls`` member, or a field of its ``.json`` member (``json:FIELD``). The
output shard has the same members in the same order with the same headers; only the audio
members' data (and so their size) change. Read and written member by member, and read to the
end-of-archive blocks: a shard cut short is refused, never protected into a shorter one.
"""

import copy
import io
import json
import lzma
import os
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor

from ..audio import is_audio_name, temp_name
from ..errors import PoscudaError
from .cells import Result, protect_cell


def sample_key(name):
    folder, _, base = name.rpartition("/")
    stem = base.split(".", 1)[0]
    return f"{folder}/{stem}" if folder else stem


def count_samples(path):
    """How many samples the shard holds; a PoscudaError when it is not whole (verify counts ORIG's
    samples before it reads them)."""
    return len({sample_key(member.name) for member, _ in _members(path, data=False) if member.isfile()})


END = 2 * tarfile.BLOCKSIZE  # a tar ends in two zero blocks (writers pad on with zeros to a record)


def _members(path, data=True):
    """(TarInfo, bytes or None) of each member of the shard at ``path``, in order, read to its end.
    tarfile stops without a word at a header cut short, at a cut between two members and at a
    damaged header, so what follows the last member must be the end-of-archive blocks. Without
    ``data`` the bodies are skipped (tarfile still finds a body cut short when it reads the next
    header). A shard that is not whole is a PoscudaError naming the last whole member."""
    try:
        shard = tarfile.open(path, "r:*")  # reads the first header
    except tarfile.ReadError:
        raise PoscudaError(f"{path}: not a tar file, or truncated in its first header") from None
    except OSError as exc:
        raise PoscudaError(f"{path}: {exc.strerror or exc}") from None
    whole = seen = None
    with shard:
        try:
            for member in shard:
                whole = seen  # this header was read: the member before it is whole
                yield member, shard.extractfile(member).read() if data and member.isfile() else None
                seen = member.name
            whole = seen
            shard.fileobj.seek(shard.offset)
            end = shard.fileobj.read(END)
        except (tarfile.ReadError, EOFError) as exc:
            raise PoscudaError(f"{path}: {_after(whole, 'truncated')} ({exc})") from None
        except (tarfile.TarError, OSError, zlib.error, lzma.LZMAError) as exc:  # also a compressed shard's damage
            raise PoscudaError(f"{path}: {_after(whole, 'unreadable')} ({exc})") from None
    if len(end) < END:
        raise PoscudaError(f"{path}: {_after(whole, 'truncated')} (no end-of-archive blocks)")
    if end.strip(b"\0"):
        raise PoscudaError(f"{path}: {_after(whole, 'damaged')}: neither a header nor the end of the archive")


def _after(whole, what):
    """What is wrong and where: "truncated after member s0001.cls", or "in its first member"."""
    return f"{what} after member {whole}" if whole is not None else f"{what} in its first member"


def _samples(path):
    """Lists of (TarInfo, bytes or None) sharing a key, in order; a key seen twice is an error."""
    seen, group, current = set(), [], None
    for member, data in _members(path):
        key = sample_key(member.name) if member.isfile() else None
        if group and key != current:
            yield group
            group = []
        if key is not None and key != current:
            if key in seen:
                raise PoscudaError(f"{path}: member {member.name}: key {key!r} appears twice in the shard")
            seen.add(key)
        current = key
        group.append((member, data))
    if group:
        yield group


def read_cells(path, options):
    """(member name, label, bytes, member name) of each audio member, in shard order."""
    for group in _samples(path):
        try:
            label = _label(group, options.label_member, path)
        except PoscudaError as exc:
            raise PoscudaError(f"{path}: {exc}") from None
        for member, data in group:
            if _is_audio(member):
                yield member.name, label, data, member.name


def _is_audio(member):
    return member.isfile() and is_audio_name(member.name)


def _label(group, label_member, path):
    """The sample's label, or None when it holds no audio (it needs none)."""
    if not any(_is_audio(member) for member, _ in group):
        return None
    wanted, _, field = label_member.partition(":")
    for member, data in group:
        if member.isfile() and member.name.endswith("." + wanted):
            text = data.decode("utf-8", "surrogateescape")  # labels that are not UTF-8 stay apart
            if wanted == "cls":
                return text.strip()
            try:
                value = json.loads(text)[field]
            except (ValueError, KeyError, TypeError):
                raise PoscudaError(f"member {member.name}: no field {field!r}") from None
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise PoscudaError(f"member {member.name}: field {field!r} is {json.dumps(value)}, not a label "
                                   "(a string or an integer)")
            return str(value)
    raise PoscudaError(f"sample {sample_key(group[0][0].name)}: no .{wanted} member to take the label from")


def protect_shard(in_path, out_path, key, options, threads=1):
    """Protect the shard at ``in_path`` into ``out_path`` (temporary name, then rename); a cells.Result.
    A shard that is not whole, or compressed, is a PoscudaError, and nothing is written."""
    packed = _compression(in_path)
    if packed:
        raise PoscudaError(f"{in_path}: a {packed}-compressed shard; protect writes shards uncompressed, so "
                           "decompress it first to protect it (verify and audit read it as it is)")
    result = Result()
    tmp = temp_name(out_path)
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as out, ThreadPoolExecutor(threads) as pool:
            pending = []
            for group in _samples(in_path):
                pending.append(pool.submit(_protect_sample, group, key, options.label_member, in_path))
                if len(pending) > 4 * threads:
                    _land(pending.pop(0).result(), out, result)
            for future in pending:
                _land(future.result(), out, result)
        if not result.failed:
            os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return result


_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def _compression(path):
    """The compression of the file at ``path`` by its first bytes, or None."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    return next((name for magic, name in _MAGIC.items() if head.startswith(magic)), None)


def _protect_sample(group, key, label_member, path):
    """[(TarInfo, bytes)] of one sample with its audio protected, its cells, and its failures."""
    try:
        label = _label(group, label_member, path)
    except PoscudaError as exc:
        return group, [], [str(exc)]
    members, cells, failed = [], [], []
    for member, data in group:
        if _is_audio(member):
            try:
                cell = protect_cell(data, label, key, f"member {member.name}")
            except PoscudaError as exc:
                failed.append(str(exc))
                members.append((member, data))
                continue
            cells.append(cell)
            data = cell.data
        members.append((member, data))
    return members, cells, failed


def _land(outcome, out, result):
    members, cells, failed = outcome
    result.rows += any(member.isfile() for member, _ in members)
    result.failed += failed
    for cell in cells:
        result.add(cell.counts)
    if result.failed:
        return  # the shard will not be written; go on only to name every bad member
    for member, data in members:
        header = copy.copy(member)
        if data is not None:
            header.size = len(data)
        out.addfile(header, None if data is None else io.BytesIO(data))


class WebDataset:
    """WebDataset tar shards, as containers/__init__.py handles every format (Options.kind): a shard
    is one part, read whole, and one task on Dask too."""

    count_rows = staticmethod(count_samples)

    @staticmethod
    def require():
        """Shards need nothing beyond the standard library."""

    @staticmethod
    def protect(in_path, out_path, key, options, threads=1, fan_out=None):
        return protect_shard(in_path, out_path, key, options, threads)

    @staticmethod
    def parts(path):
        return [(None, count_samples(path))]

    @staticmethod
    def read_cells(path, options, part=None):
        return read_cells(path, options)

    @staticmethod
    def part_of(path, name):
        return None
