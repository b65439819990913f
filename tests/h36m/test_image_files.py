"""Image files: the size each format declares, read before decoding, against OpenCV's own encoder
(an independent writer of each format), and the pixel bound just inside and just outside."""

from __future__ import annotations

import errno
import io
import os
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


def _sof(width: int, height: int) -> bytes:
    """A baseline start-of-frame segment (ITU T.81 B.2.2) for one 8-bit component."""
    return b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"


def _jpeg_header(width: int, height: int) -> bytes:
    """SOI, an APP0 segment, then SOF0 declaring width x height."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    return b"\xff\xd8" + app0 + _sof(width, height) + b"\x00" * 16


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


# Headers written by hand from each format's spec, at the edges where a parser reads past the
# end of the file or a signed read turns a large size negative.


def _bmp(header_size: int, sizes: bytes) -> bytes:
    """A BITMAPFILEHEADER (14 bytes) then the info header's size field and the sizes."""
    return b"BM" + b"\x00" * 12 + struct.pack("<I", header_size) + sizes


def _webp(chunk: bytes, payload: bytes) -> bytes:
    """RIFF, a size, WEBP, then a chunk tag, its size and its first bytes."""
    return b"RIFF" + b"\x00" * 4 + b"WEBP" + chunk + b"\x00" * 4 + payload


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # PNG: signature, IHDR length and tag, then the two sizes end at byte 24 (PNG spec 11.2.2).
        (_png_header(37, 21)[:24], ("PNG", (37, 21))),
        (_png_header(37, 21)[:23], ("PNG", None)),
        (_png_header(2**31, 1), ("PNG", (2**31, 1))),  # unsigned 32-bit sizes
        (b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0d" + b"IDAT" + b"\x00" * 12, ("PNG", None)),
        # JPEG: a marker's 0xFF must follow SOI directly.
        (b"\xff\xd8\x00" + _sof(37, 21), ("JPEG", None)),
        (b"\xff\xd8\xff\xff", ("JPEG", None)),  # fill bytes, then the end of the file
        (b"\xff\xd8\xff", ("JPEG", None)),
        (b"\xff\xd8\xff\xd0" + _sof(37, 21), ("JPEG", (37, 21))),  # RST0 has no length
        (b"\xff\xd8\xff\xe0\x00", ("JPEG", None)),  # half a length field
        (b"\xff\xd8" + _sof(37, 21)[:8], ("JPEG", None)),  # the frame header cut inside the width
        (b"\xff\xd8" + _sof(37, 21)[:9], ("JPEG", (37, 21))),  # ... and just after it
        (b"\xff\xd8" + _sof(50000, 40000), ("JPEG", (50000, 40000))),  # unsigned 16-bit sizes
        (b"\xff\xd8\xff\xe0\x00\x02" + _sof(37, 21), ("JPEG", (37, 21))),  # an empty segment
        (b"\xff\xd8\xff\xda\x00\x08" + b"\x01" * 6 + _sof(37, 21), ("JPEG", None)),  # scan first
        # A 36 KiB APP1 (an ICC profile or EXIF block), over a signed 16-bit length.
        (
            b"\xff\xd8\xff\xe1" + struct.pack(">H", 0x9000) + b"\x01" * (0x9000 - 2) + _sof(37, 21),
            ("JPEG", (37, 21)),
        ),
        # BMP: the BITMAPINFOHEADER's signed 32-bit sizes end at byte 26.
        (_bmp(40, struct.pack("<ii", 37, 21)), ("BMP", (37, 21))),
        (_bmp(40, struct.pack("<ii", 37, 21))[:25], ("BMP", None)),
        (_bmp(40, struct.pack("<ii", 37, -21)), ("BMP", (37, 21))),  # top-down rows
        # OS/2 BITMAPCOREHEADER: unsigned 16-bit sizes.
        (_bmp(12, struct.pack("<HH", 40000, 30000) + b"\x01" * 4), ("BMP", (40000, 30000))),
        # WebP VP8X: 24-bit canvas width and height minus one at bytes 24 and 27, to byte 30.
        (
            _webp(b"VP8X", b"\x00" * 4 + b"\x03\x02\x01" + b"\x06\x05\x04"),
            ("WebP", (1 + 0x010203, 1 + 0x040506)),
        ),
        (
            _webp(b"VP8X", b"\x00" * 4 + b"\x03\x02\x01" + b"\x06\x05\x04" + b"ICCP"),
            ("WebP", (1 + 0x010203, 1 + 0x040506)),
        ),
        (_webp(b"VP8X", b"\x00" * 4 + b"\x03\x02\x01" + b"\x06\x05")[:29], ("WebP", None)),
        # A RIFF file that is not WebP, or a chunk that is neither VP8, VP8L nor VP8X.
        (b"RIFF" + b"\x00" * 4 + b"WAVEVP8X" + b"\x00" * 8 + b"\x01" * 6, ("WebP", None)),
        (_webp(b"ALPH", b"\x2f" + b"\x01" * 9), ("WebP", None)),
        (_webp(b"ALPH", b"\x00" * 3 + b"\x9d\x01\x2a" + b"\x01" * 4), ("WebP", None)),
    ],
)
def test_declared_size_at_the_edges_of_each_header(data: bytes, expected) -> None:
    assert declared_size(data) == expected


def _write(tmp_path: Path, data: bytes, name: str = "edge.png") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_one_pixel_sides_are_images_and_zero_sides_are_not(tmp_path: Path) -> None:
    _, data = cv2.imencode(".png", PICTURE[:1, :1])
    assert read_bgr(_write(tmp_path, data.tobytes())).shape == (1, 1, 3)
    with pytest.raises(DatasetError, match=r"a PNG image of 10 x 0 pixels"):
        read_bgr(_write(tmp_path, _png_header(10, 0)))


def test_the_pixel_bound_is_named_in_megapixels(tmp_path: Path) -> None:
    # 64 * 2**20 pixels is 64 Mpx; 8193 x 8192 is just over it.
    with pytest.raises(
        DatasetError, match=r"declares 8193 x 8192 pixels, over the 64 Mpx read here"
    ):
        read_bgr(_write(tmp_path, _png_header(8193, 8192)))


def test_only_zero_bytes_may_follow_the_end_marker(tmp_path: Path) -> None:
    _, data = cv2.imencode(".jpg", PICTURE)
    with pytest.raises(DatasetError, match=r"a truncated JPEG file"):
        read_bgr(_write(tmp_path, data.tobytes() + b"XX", "x.jpg"))


@pytest.mark.parametrize(("junk", "refused"), [(4, False), (5, True)])
def test_the_png_end_chunk_is_looked_for_in_the_last_12_bytes(
    tmp_path: Path, junk: int, refused: bool
) -> None:
    # IEND's tag and CRC are the last 8 bytes: 4 more keep the tag within the last 12.
    _, data = cv2.imencode(".png", PICTURE)
    path = _write(tmp_path, data.tobytes() + b"\x01" * junk)
    if refused:
        with pytest.raises(DatasetError, match=r"a truncated PNG file"):
            read_bgr(path)
    else:
        assert read_bgr(path).shape == PICTURE.shape


def test_an_end_tag_inside_the_file_does_not_make_it_whole(tmp_path: Path) -> None:
    path = _write(tmp_path, _png_header(37, 21) + b"IEND" + b"\x01" * 16)
    with pytest.raises(DatasetError, match=r"a truncated PNG file"):
        read_bgr(path)


def test_a_decoder_disagreeing_with_the_header_is_named_with_both_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data = cv2.imencode(".png", PICTURE)
    path = _write(tmp_path, data.tobytes())
    monkeypatch.setattr(image_files.cv2, "imdecode", lambda *a: np.zeros((20, 36, 3), np.uint8))
    with pytest.raises(
        DatasetError, match=r"edge\.png: decodes to 36 x 20 pixels, not the 37 x 21 its header"
    ):
        read_bgr(path)


class _GrowingFile:
    """A path whose size, when asked, is smaller than what it then reads: a file still being
    written."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    def stat(self):
        return os.stat_result((0,) * 6 + (1, 0, 0, 0))

    def open(self, mode: str):
        return io.BytesIO(self.content)


def test_a_file_growing_after_its_size_was_read_is_read_only_to_one_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(image_files, "MAX_IMAGE_BYTES", 10)
    assert image_files.read_image_bytes(_GrowingFile(b"\x01" * 100)) == b"\x01" * 11


def test_an_unreadable_path_names_the_reason_not_the_exception(tmp_path: Path) -> None:
    reason = os.strerror(errno.ENOENT)
    with pytest.raises(DatasetError, match=rf"missing\.jpg: cannot be read \({reason}\)$"):
        read_bgr(tmp_path / "missing.jpg")
