"""Image files read with bounds: the size a file declares is checked before anything is decoded.

OpenCV decodes a whole image before it says how large it is, and its own limit is 2^30 pixels:
a 110 KB PNG declaring 30000 x 30000 would be decoded into 2.7 GB. Here the header is read
first (PNG, JPEG, BMP and WebP, the formats people keep photos in) and a declared size over
MAX_IMAGE_PIXELS is refused; other formats are refused by name, never handed to a decoder
whose cost is unknown.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import DatasetError

MAX_IMAGE_BYTES = 256 * 1024 * 1024  # larger than any photo or video frame people feed a pose net
MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # 64 Mpx (8192 x 8192): over 10x a phone photo's 12 Mpx
MAX_JPEG_SEGMENTS = 4096  # a JPEG's size sits in its first few segments; more is a crafted file
FORMATS = "PNG, JPEG, BMP or WebP"

# Colour, and never rotate by EXIF: the annotations are in the sensor's pixel frame.
IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION

# JPEG start-of-frame markers carry the size; C4 (Huffman tables), C8 and CC (arithmetic
# coding conditioning) share the range but are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset(range(0xD0, 0xDA)) | {0x01}  # RSTn, SOI, EOI, TEM: no length


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    for _ in range(MAX_JPEG_SEGMENTS):
        # Markers may be padded with any number of 0xFF bytes.
        while position < len(data) and data[position] == 0xFF:
            position += 1
        if position + 1 > len(data) or data[position - 1] != 0xFF:
            return None
        marker = data[position]
        position += 1
        if marker in _STANDALONE_MARKERS:
            continue
        if position + 2 > len(data):
            return None
        (length,) = struct.unpack(">H", data[position : position + 2])
        if marker in _SOF_MARKERS:
            if position + 7 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 3 : position + 7])
            return width, height
        if length < 2 or marker == 0xDA:  # scan data before any frame header
            return None
        position += length
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
        return width, height
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # negative height: rows stored top-down


def _webp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 30 or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def declared_size(data: bytes) -> tuple[str, tuple[int, int] | None] | None:
    """(format, (width, height) or None when the header is cut short), or None: not a format
    read here."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", _png_size(data)
    if data.startswith(b"\xff\xd8"):
        return "JPEG", _jpeg_size(data)
    if data.startswith(b"BM"):
        return "BMP", _bmp_size(data)
    if data.startswith(b"RIFF"):
        return "WebP", _webp_size(data)
    return None


def read_image_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise DatasetError(
                f"{path}: {size:,} bytes, over the {MAX_IMAGE_BYTES:,} read for an image"
            )
        with path.open("rb") as handle:
            return handle.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def decode_bgr(
    data: bytes, source: Path, expected_size: tuple[int, int] | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 BGR from a file's bytes, its declared size checked first (against
    expected_size, (width, height), when an annotation gives one)."""
    found = declared_size(data)
    if found is None:
        raise DatasetError(f"{source}: not a {FORMATS} image")
    kind, size = found
    if size is None:
        raise DatasetError(f"{source}: a {kind} file whose header gives no image size")
    width, height = size
    if width <= 0 or height <= 0:
        raise DatasetError(f"{source}: a {kind} image of {width} x {height} pixels")
    if expected_size is not None and (width, height) != tuple(expected_size):
        raise DatasetError(
            f"{source}: declares {width} x {height} pixels, its annotation says "
            f"{expected_size[0]} x {expected_size[1]}"
        )
    if width * height > MAX_IMAGE_PIXELS:
        raise DatasetError(
            f"{source}: declares {width} x {height} pixels, over the "
            f"{MAX_IMAGE_PIXELS / 2**20:.0f} Mpx read here"
        )
    # A cut-short file decodes to a picture grey below the cut, with libjpeg's unattributed
    # warning on stderr at best: the end marker every complete file has is required instead.
    ending = data.rstrip(b"\x00")[-12:]  # some writers pad the end
    if (kind == "JPEG" and not ending.endswith(b"\xff\xd9")) or (
        kind == "PNG" and b"IEND" not in ending
    ):
        raise DatasetError(f"{source}: a truncated {kind} file (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), IMREAD_FLAGS)
    if image is None:
        raise DatasetError(f"{source}: cannot be decoded as a {kind} image")
    if image.shape[:2] != (height, width):
        raise DatasetError(
            f"{source}: decodes to {image.shape[1]} x {image.shape[0]} pixels, not the "
            f"{width} x {height} its header declares"
        )
    return image


def read_bgr(path: str | Path, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 BGR, or a DatasetError naming the file."""
    path = Path(path)
    return decode_bgr(read_image_bytes(path), path, expected_size)
