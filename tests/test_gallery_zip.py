"""Reading uploaded ZIPs and folders safely: traversal, links, bombs, limits, ignored files."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from sketch2face.gallery.errors import UnsafeArchiveError
from sketch2face.gallery.zipsafe import (
    ArchiveLimits,
    display_name,
    folder_entries,
    is_zip,
    zip_entries,
)


def make_zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    buf.seek(0)
    return buf


def test_plain_zip_lists_photos_and_ignores_system_files() -> None:
    buf = make_zip(
        {
            "a/1.jpg": b"one",
            "b.png": b"two",
            "__MACOSX/a/._1.jpg": b"fork",
            "a/.hidden.jpg": b"x",
            "Thumbs.db": b"x",
            "dir/": b"",
        }
    )
    files = zip_entries(buf)
    assert [f.name for f in files] == ["a/1.jpg", "b.png"]
    assert [f.read() for f in files] == [b"one", b"two"]
    assert [f.size for f in files] == [3, 3]


@pytest.mark.parametrize(
    "name",
    ["../evil.jpg", "a/../../evil.jpg", "/etc/passwd", "C:/x.jpg", "..\\evil.jpg", "\\abs.jpg"],
)
def test_path_traversal_refuses_the_whole_archive(name: str) -> None:
    buf = make_zip({"ok.jpg": b"fine", name: b"bad"})
    with pytest.raises(UnsafeArchiveError, match="outside the archive"):
        zip_entries(buf)


def test_symlink_member_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link.jpg")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    buf.seek(0)
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        zip_entries(buf)


def test_zip_bomb_by_ratio_is_refused() -> None:
    buf = make_zip({"bomb.bmp": b"\0" * (20 * 1024 * 1024)}, compression=zipfile.ZIP_DEFLATED)
    assert len(buf.getvalue()) < 100_000  # ~1000:1
    with pytest.raises(UnsafeArchiveError, match="ZIP bomb"):
        zip_entries(buf)


def test_total_uncompressed_size_is_limited() -> None:
    buf = make_zip({f"{i}.jpg": b"x" * 1000 for i in range(10)})
    with pytest.raises(UnsafeArchiveError, match="expands to 10000 bytes"):
        zip_entries(buf, ArchiveLimits(max_total_bytes=5000))


def test_number_of_entries_is_limited() -> None:
    buf = make_zip({f"{i}.jpg": b"x" for i in range(12)})
    with pytest.raises(UnsafeArchiveError, match="12 entries"):
        zip_entries(buf, ArchiveLimits(max_entries=10))


def test_not_a_zip_is_a_clear_error() -> None:
    with pytest.raises(UnsafeArchiveError, match="not a readable ZIP"):
        zip_entries(io.BytesIO(b"PK\x03\x04 but then garbage"))


def test_encrypted_zip_is_refused() -> None:
    buf = bytearray(make_zip({"a.jpg": b"data"}).getvalue())
    # set the 'encrypted' flag bit in the local and central headers
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = buf.find(signature)
        buf[at + offset] |= 0x1
    with pytest.raises(UnsafeArchiveError, match="encrypted"):
        zip_entries(io.BytesIO(bytes(buf)))


def test_member_lying_about_its_size_cannot_expand_past_it() -> None:
    """A member that inflates to more than its declared size is cut at the declared size and
    fails its CRC check: never more bytes in memory than the limits allow."""
    buf = bytearray(make_zip({"a.jpg": b"A" * 5000}, compression=zipfile.ZIP_DEFLATED).getvalue())
    central = buf.find(b"PK\x01\x02")
    buf[central + 24 : central + 28] = (100).to_bytes(4, "little")  # uncompressed size: 100
    local = buf.find(b"PK\x03\x04")
    buf[local + 22 : local + 26] = (100).to_bytes(4, "little")
    files = zip_entries(io.BytesIO(bytes(buf)))
    with pytest.raises(UnsafeArchiveError, match="cannot be read"):
        files[0].read()


def test_folder_entries_recursive_sorted_without_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "a.jpg").write_bytes(b"1")
    (tmp_path / "b" / "c.jpg").write_bytes(b"22")
    (tmp_path / ".git" / "x.jpg").write_bytes(b"no")
    (tmp_path / ".DS_Store").write_bytes(b"no")
    files = folder_entries(tmp_path)
    assert [(f.name, f.size, f.read()) for f in files] == [
        ("a.jpg", 1, b"1"),
        ("b/c.jpg", 2, b"22"),
    ]


def test_display_name_and_zip_magic() -> None:
    assert display_name("a\\b\x07.jpg") == "a/b_.jpg"
    assert len(display_name("x" * 600)) == 255
    assert is_zip(b"PK\x03\x04rest") and is_zip(b"PK\x05\x06") and not is_zip(b"\x89PNG")
