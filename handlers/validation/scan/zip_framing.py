"""A `.keras` archive is exactly its members: framing checks that run before and after `zipfile`.

`zipfile` is lenient by design: it finds the end-of-central-directory record anywhere in the
last 64 KiB, accepts data in front of the archive (self-extractors), after it and between
members, and builds one `ZipInfo` (~0.5 KiB) per central-directory entry before anyone can count
them. A file that is a valid archive *and* something else is a polyglot; one whose members
overlap or hide bytes between them reads differently in different readers. So:

`read_directory` (before `zipfile`): the end-of-central-directory record (and its Zip64 record
and locator) must end exactly at the end of the file; the declared entry count must be within
MAX_ARCHIVE_MEMBERS and the central directory within `CD_BYTES_PER_MEMBER` per allowed member;
the directory must end exactly where the end records begin; and its entries are counted by
walking their fixed-size headers (no objects built), stopping at the first entry over the cap.

`check_contiguous` (after `zipfile`): the members, in file order, start at offset 0 and each
begins exactly where the previous one's data (and data descriptor) ends; the last ends exactly
where the central directory begins. Local headers must agree with the central directory on
name, method, flags and (when present) sizes and CRC. No gaps, no overlaps, no junk.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from ...errors import Rejected
from ...limits import CD_BYTES_PER_MEMBER

CODE = "keras.bad_zip_framing"
_EOCD = struct.Struct(
    "<4s4H2LH"
)  # sig, disk, cd disk, entries here, entries, cd size, offset, comment
_EOCD_SIG = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")  # sig, disk with zip64 record, its offset, disks
_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64 = struct.Struct("<4sQ2H2L4Q")  # sig, record size, made, needed, disk, cd disk, ...
_ZIP64_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_CENTRAL_SIG = b"PK\x01\x02"
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIG = b"PK\x03\x04"
_MAX_COMMENT = 0xFFFF
_FIX = "Save the model again with model.save('model.keras') and upload that file as it is."


@dataclass(frozen=True)
class Directory:
    entries: int
    offset: int  # where the central directory starts == where the last member must end
    size: int


def _reject(problem: str) -> Rejected:
    return Rejected(f"The .keras archive is not just its members: {problem}. {_FIX}", code=CODE)


def read_directory(f: BinaryIO, file_size: int, max_members: int) -> Directory:
    """Locate and bound the central directory from the end records, before `zipfile` reads it."""
    tail_size = min(file_size, _EOCD.size + _MAX_COMMENT)
    f.seek(file_size - tail_size)
    tail = f.read(tail_size)
    # The same search as zipfile's: a comment-less record at the very end, else the last one.
    if tail[-_EOCD.size :][:4] == _EOCD_SIG and tail[-2:] == b"\0\0":
        at = len(tail) - _EOCD.size
    else:
        at = tail.rfind(_EOCD_SIG)
    if at < 0 or at + _EOCD.size > len(tail):
        raise Rejected(
            f"No end-of-central-directory record: the .keras file is truncated. {_FIX}",
            code="keras.truncated_zip",
        )
    eocd_at = file_size - tail_size + at
    _, disk, cd_disk, here, entries, cd_size, cd_offset, comment = _EOCD.unpack_from(tail, at)
    end = eocd_at + _EOCD.size + comment
    if end != file_size:
        raise _reject(
            f"{file_size - end:,} bytes follow the end-of-central-directory record and its comment"
            if end < file_size
            else "its end-of-central-directory comment runs past the end of the file"
        )
    directory_end = eocd_at
    locator_at = eocd_at - _LOCATOR.size
    if locator_at >= 0:
        f.seek(locator_at)
        locator = f.read(_LOCATOR.size)
        if locator[:4] == _LOCATOR_SIG:  # zipfile then takes counts and offsets from Zip64
            _, z_disk, z_offset, disks = _LOCATOR.unpack(locator)
            z_at = locator_at - _ZIP64.size
            if z_at < 0 or z_offset != z_at or z_disk != 0 or disks != 1:
                raise _reject("the Zip64 end records are not adjacent to each other")
            f.seek(z_at)
            record = f.read(_ZIP64.size)
            fields = _ZIP64.unpack(record)
            if fields[0] != _ZIP64_SIG or fields[1] != _ZIP64.size - 12:
                raise _reject("the Zip64 end-of-central-directory record is malformed")
            _, _, _, _, disk, cd_disk, here, entries, cd_size, cd_offset = fields
            directory_end = z_at
    if disk != 0 or cd_disk != 0 or here != entries:
        raise _reject("it claims to span several disks")
    if entries > max_members:
        raise Rejected(
            f"The archive declares {entries:,} members; the limit is {max_members:,} "
            "(MAX_ARCHIVE_MEMBERS). Nothing was read past its end record.",
            code="keras.too_many_members",
        )
    cd_limit = max_members * CD_BYTES_PER_MEMBER
    if cd_size > cd_limit:
        raise Rejected(
            f"The archive's central directory is {cd_size:,} bytes; at most {cd_limit:,} "
            f"({CD_BYTES_PER_MEMBER} per allowed member, MAX_ARCHIVE_MEMBERS) is read.",
            code="keras.too_many_members",
        )
    if cd_offset + cd_size != directory_end:
        raise _reject(
            "its central directory does not end where its end records begin (data in front of "
            "the archive, or between the directory and its end record)"
        )
    f.seek(cd_offset)
    cd = f.read(cd_size)
    if len(cd) != cd_size:
        raise Rejected(f"The central directory is truncated. {_FIX}", code="keras.truncated_zip")
    count = pos = 0
    while pos < cd_size:
        if pos + _CENTRAL.size > cd_size or cd[pos : pos + 4] != _CENTRAL_SIG:
            raise _reject(f"central directory entry {count + 1} is malformed")
        fields = _CENTRAL.unpack_from(cd, pos)
        pos += _CENTRAL.size + fields[12] + fields[13] + fields[14]
        count += 1
        if count > max_members:
            raise Rejected(
                f"The archive has more than {max_members:,} members (MAX_ARCHIVE_MEMBERS).",
                code="keras.too_many_members",
            )
    if pos != cd_size or count != entries:
        raise _reject(
            f"the end record says {entries} members in {cd_size:,} bytes, the directory holds "
            f"{count}"
        )
    return Directory(entries, cd_offset, cd_size)


def check_contiguous(f: BinaryIO, infos: list[zipfile.ZipInfo], directory: Directory) -> None:
    """Members start at 0 and follow each other without a gap up to the central directory."""
    expected = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset != expected:
            raise _reject(
                f"{info.header_offset - expected:+,} bytes between the previous member and "
                f"{info.filename!r}"
                if info.header_offset > expected
                else f"member {info.filename!r} overlaps the previous one"
            )
        f.seek(info.header_offset)
        header = f.read(_LOCAL.size)
        if len(header) != _LOCAL.size or header[:4] != _LOCAL_SIG:
            raise _reject(f"the local header of {info.filename!r} is missing or corrupt")
        (_, _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len) = _LOCAL.unpack(
            header
        )
        raw_name = f.read(name_len)
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        if name != info.orig_filename or method != info.compress_type:
            raise _reject(
                f"the local header of {info.filename!r} disagrees with the central directory "
                "(name or compression method)"
            )
        if (flags ^ info.flag_bits) & 0x809:  # encryption, data descriptor, UTF-8 name
            raise _reject(f"the local and central flags of {info.filename!r} disagree")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise _reject(f"stored member {info.filename!r} has two different sizes")
        descriptor = bool(flags & 0x8)
        if not descriptor and (
            crc != info.CRC
            or (csize != 0xFFFFFFFF and csize != info.compress_size)
            or (usize != 0xFFFFFFFF and usize != info.file_size)
        ):
            raise _reject(
                f"the local header of {info.filename!r} disagrees with the central directory "
                "on sizes or CRC"
            )
        end = info.header_offset + _LOCAL.size + name_len + extra_len + info.compress_size
        if descriptor:
            end += _descriptor_size(f, end, info)
        expected = end
    if expected != directory.offset:
        raise _reject(
            f"{directory.offset - expected:,} bytes between the last member and the central "
            "directory"
            if expected < directory.offset
            else "the last member runs into the central directory"
        )


def _descriptor_size(f: BinaryIO, at: int, info: zipfile.ZipInfo) -> int:
    """Length of the data descriptor at `at` (signature optional, 4- or 8-byte sizes)."""
    f.seek(at)
    raw = f.read(24)
    for size, layout in ((16, "<4sLLL"), (24, "<4sLQQ"), (12, "<LLL"), (20, "<LQQ")):
        if len(raw) < size:
            continue
        fields = struct.unpack(layout, raw[:size])
        if len(fields) == 4 and fields[0] != b"PK\x07\x08":
            continue
        if tuple(fields[-3:]) == (info.CRC, info.compress_size, info.file_size):
            return size
    raise _reject(f"the data descriptor of {info.filename!r} is missing or disagrees")
