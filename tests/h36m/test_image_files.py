"""Image files: the size each format declares, read before decoding, against OpenCV's own encoder
(an independent writer of each format), and the pixel bound just inside and just outside."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from converter.core.errors import DatasetError
from converter.h36m import image_files
from converter.h36m.image_files import MAX_IMAGE_PIXELS, declared_size, read_bgr

PICTURE = np.random.default_rng(0).integers(0, 255, size=(21, 37, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("suffix", "kind", "params"),
    [
        (".png", "PNG", []),
        (".jpg", "JPEG", []),
        (".jpg", "JPEG", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),  # SOF2, not SOF0
        (".bmp", "BMP", []),
        (".webp", "WebP", [cv2.IMWRITE_WEBP_QUALITY, 80]),  # lossy: VP8
        (".webp", "WebP", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # lossless: VP8L
    ],
)
def test_declared_size_of_what_opencv_writes(suffix: str, kind: str, params: list[int]) -> None:
    ok, data = cv2.imencode(suffix, PICTURE, params)
    assert ok
    assert declared_size(data.tobytes()) == (kind, (37, 21))


def test_a_read_image_is_the_decoded_file(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), PICTURE)
    assert np.array_equal(read_bgr(path), PICTURE)


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring width x height, then a broken body."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + b"\x00" * 16
    )


def _jpeg_header(width: int, height: int) -> bytes:
    """SOI, an APP0 segment, then SOF0 declaring width x height."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\x00" * 16


@pytest.mark.parametrize("header", [_png_header, _jpeg_header])
def test_a_declared_size_over_the_bound_is_refused_before_decoding(
    tmp_path: Path, header, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = []
    monkeypatch.setattr(image_files.cv2, "imdecode", lambda *a: decoded.append(a))
    side = 30000
    path = tmp_path / "bomb.img"
    path.write_bytes(header(side, side))
    with pytest.raises(DatasetError, match=r"bomb\.img: declares 30000 x 30000 pixels, over"):
        read_bgr(path)
    assert decoded == []


@pytest.mark.parametrize(
    ("pixels", "refused"), [(MAX_IMAGE_PIXELS, False), (MAX_IMAGE_PIXELS + 1, True)]
)
def test_the_pixel_bound_just_inside_and_outside(
    tmp_path: Path, pixels: int, refused: bool
) -> None:
    # 1 x N images: the product is exactly the count; inside the bound the header passes and
    # the (cut short) body is refused by the next check.
    path = tmp_path / "edge.png"
    path.write_bytes(_png_header(pixels, 1))
    message = r"declares .* over" if refused else r"a truncated PNG file"
    with pytest.raises(DatasetError, match=message):
        read_bgr(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"GIF89a" + b"\x00" * 40, r"not a PNG, JPEG, BMP or WebP image"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", r"a PNG file whose header gives no image size"),
        (
            b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 10,
            r"a JPEG file whose header gives no image size",
        ),
        (_png_header(0, 10), r"a PNG image of 0 x 10 pixels"),
        (b"", r"not a PNG, JPEG, BMP or WebP image"),
    ],
)
def test_bad_image_files_are_named_in_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.img"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=r"bad\.img: " + message):
        read_bgr(path)


def test_a_file_that_decodes_to_another_size_is_refused(tmp_path: Path) -> None:
    _, data = cv2.imencode(".png", PICTURE)
    forged = bytearray(data.tobytes())
    forged[16:24] = struct.pack(">II", 38, 21)  # the header says one column more
    path = tmp_path / "forged.png"
    path.write_bytes(bytes(forged))
    with pytest.raises(DatasetError, match=r"forged\.png: (decodes to 37 x 21|cannot be decoded)"):
        read_bgr(path)


def test_files_over_the_byte_bound_are_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), PICTURE)
    size = path.stat().st_size
    monkeypatch.setattr(image_files, "MAX_IMAGE_BYTES", size)
    assert read_bgr(path).shape == PICTURE.shape  # just inside
    monkeypatch.setattr(image_files, "MAX_IMAGE_BYTES", size - 1)
    with pytest.raises(DatasetError, match=r"big\.png: [0-9,]+ bytes, over the"):
        read_bgr(path)


def test_a_missing_or_unreadable_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"missing\.jpg: cannot be read"):
        read_bgr(tmp_path / "missing.jpg")
    with pytest.raises(DatasetError, match=r"cannot be read"):
        read_bgr(tmp_path / ("x" * 300 + ".jpg"))  # ENAMETOOLONG


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_truncated_file_is_refused_not_half_decoded(tmp_path: Path, suffix: str) -> None:
    _, data = cv2.imencode(suffix, PICTURE)
    whole = tmp_path / f"whole{suffix}"
    whole.write_bytes(data.tobytes() + b"\x00" * 3)  # padding after the end marker is fine
    assert read_bgr(whole).shape == PICTURE.shape
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data.tobytes()[: len(data) * 3 // 4])
    with pytest.raises(DatasetError, match=r"cut\.\w+: a truncated (JPEG|PNG) file"):
        read_bgr(cut)


def test_an_image_is_held_to_its_annotated_size_before_decoding(tmp_path: Path) -> None:
    """A 110 KB PNG declaring 30000 x 30000 where the annotation says 1000 x 1002: refused by
    the header, with both sizes, before any pixel is decoded."""
    from converter.core.variants import get_variant
    from converter.h36m.preprocess import load_input

    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), PICTURE)
    assert read_bgr(path, expected_size=(37, 21)).shape == PICTURE.shape
    with pytest.raises(DatasetError, match=r"declares 37 x 21 pixels, its annotation says 38 x 21"):
        read_bgr(path, expected_size=(38, 21))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(30000, 30000))
    with pytest.raises(DatasetError, match="declares 30000 x 30000 pixels, its annotation says"):
        load_input(bomb, (0, 0, 10, 10), get_variant("XS"), (1000, 1002))
