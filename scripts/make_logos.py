"""Draws Kindling's logo (a flame-coloured disc with a darker core) as PNGs, with no dependencies.

Run once when the logo changes: python3 scripts/make_logos.py
"""
import struct
import zlib
from pathlib import Path


def png(size: int) -> bytes:
    rows = []
    c = (size - 1) / 2
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            d = ((x - c) ** 2 + (y - c) ** 2) ** 0.5 / (size / 2)
            if d > 1:
                row += bytes([0, 0, 0, 0])
            elif d > 0.55:
                row += bytes([240, 120, 30, 255])
            else:
                row += bytes([200, 40, 20, 255])
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "share"
    out.mkdir(exist_ok=True)
    for n in (32, 64):
        (out / f"logo-{n}x{n}.png").write_bytes(png(n))
