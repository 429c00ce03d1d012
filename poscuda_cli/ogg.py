"""Ogg pages: the stream serial number and the page checksum, so Ogg outputs are deterministic.

libsndfile draws an Ogg stream's serial number from the clock; :func:`fixed_serial` replaces it
with one derived from the content and recomputes each page's CRC.
"""

import hashlib
from functools import lru_cache


def fixed_serial(data):
    """``data`` (an Ogg file) with every page's stream serial number set from the file's content.

    libsndfile draws the serial at random from the clock, so two writes of the same Vorbis or Opus
    audio differ in those four bytes (and each page's checksum): this makes them identical. The
    serial is the first four bytes of a SHA-256 over the file with serials and checksums zeroed.
    """
    found = list(pages(data))
    blank = bytearray(data)
    for start, _ in found:
        blank[start + 14:start + 18] = blank[start + 22:start + 26] = b"\0\0\0\0"
    serial = hashlib.sha256(bytes(blank)).digest()[:4]
    out = bytearray(data)
    for start, end in found:
        out[start + 14:start + 18] = serial
        out[start + 22:start + 26] = b"\0\0\0\0"
        out[start + 22:start + 26] = crc(bytes(out[start:end])).to_bytes(4, "little")
    return bytes(out)


def fix_serial_in_place(path):
    """:func:`fixed_serial` applied to the Ogg file at ``path``."""
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(fixed_serial(data))


def pages(data):
    """(start, end) of each page: "OggS", 22 header bytes, a segment table, then the segments."""
    start = 0
    while start + 27 <= len(data) and data[start:start + 4] == b"OggS":
        segments = data[start + 26]
        end = start + 27 + segments + sum(data[start + 27:start + 27 + segments])
        yield start, end
        start = end


@lru_cache(maxsize=1)
def _crc_table():
    table = []
    for byte in range(256):
        value = byte << 24
        for _ in range(8):
            value = ((value << 1) ^ 0x04C11DB7) if value & 0x80000000 else value << 1
        table.append(value & 0xFFFFFFFF)
    return table


def crc(page):
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, not reflected, starting from 0."""
    table, value = _crc_table(), 0
    for byte in page:
        value = ((value << 8) & 0xFFFFFFFF) ^ table[(value >> 24) ^ byte]
    return value
