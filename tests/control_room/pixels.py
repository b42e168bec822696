"""Read a screenshot's pixels (PNG, standard library only) and find the shapes drawn in one colour.

The page test checks what a person sees, not only the DOM: each bar that carries a value is in
the picture, with its height in proportion to the value. Chromium writes 8-bit RGB(A)
non-interlaced PNGs, which is all this reads.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        start = x * self.channels
        r, g, b = self.rows[y][start : start + 3]
        return r, g, b


def read_png(data: bytes) -> Image:
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    offset, idat = 8, b""
    width = height = channels = 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, "only 8-bit RGB(A), not interlaced"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], line, previous, channels)
        rows.append(bytes(line))
        previous = line
    return Image(width, height, channels, rows)


def _unfilter(kind: int, line: bytearray, above: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    if kind == 2:  # Up (the common one): no dependency along the row
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, above, strict=True))
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = above[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
        elif kind == 4:
            corner = above[i - bpp] if i >= bpp else 0
            guess = left + up - corner
            pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
            best = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
            line[i] = (line[i] + best) & 0xFF
        else:
            raise AssertionError(f"unknown PNG filter {kind}")


def hex_colour(text: str) -> tuple[int, int, int]:
    value = text.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


@dataclass(frozen=True)
class Box:
    left: int
    right: int
    top: int
    bottom: int

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def width(self) -> int:
        return self.right - self.left + 1


def boxes(image: Image, colour: tuple[int, int, int], *, top: int = 0, bottom: int | None = None) -> list[Box]:
    """The shapes painted exactly ``colour`` between rows ``top`` and ``bottom``, one per run of
    adjacent columns holding it (bars side by side with gaps between them), left to right."""
    bottom = image.height - 1 if bottom is None else bottom
    columns: dict[int, list[int]] = {}
    for y in range(top, bottom + 1):
        row = image.rows[y]
        for x in range(image.width):
            start = x * image.channels
            if row[start] == colour[0] and row[start + 1] == colour[1] and row[start + 2] == colour[2]:
                columns.setdefault(x, []).append(y)
    found: list[Box] = []
    for x in sorted(columns):
        ys = columns[x]
        if found and found[-1].right == x - 1:
            last = found[-1]
            found[-1] = Box(last.left, x, min(last.top, ys[0]), max(last.bottom, ys[-1]))
        else:
            found.append(Box(x, x, ys[0], ys[-1]))
    return found
