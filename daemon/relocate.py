"""Moving one file so that, at every instant, its bytes are whole in one place at least.

On one filesystem a file is hard-linked to its new name, then unlinked from the old one:
the link refuses to replace anything, and a crash between the two leaves both names on
one inode. Across filesystems (or where links are not supported) the bytes are copied to
a temporary name beside the destination, flushed, hashed again from the disk and compared
with the expected hash before the copy takes its name and the source is removed.

``restore`` looks at both places and puts the file back at its source whatever step a
move was interrupted at, so it also finishes an undo that was itself interrupted.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from dupe_scanner.errors import DupeScannerError
from dupe_scanner.fileio import fsync_folder
from dupe_scanner.indexer import content_hash

PART_SUFFIX = ".dupe-scanner-part"
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)


class MoveRefused(DupeScannerError):
    """A file was not moved, for the reason given; it is left where it was."""


def part_path(destination: Path) -> Path:
    """Where a copy is written before it takes its name (hidden, beside the destination)."""
    return destination.with_name(f".{destination.name}{PART_SUFFIX}")


def move_file(source: Path, destination: Path, expected_hash: str) -> str:
    """Move ``source`` to ``destination``: "linked" on one filesystem, else "copied" and verified.

    Raises ``MoveRefused`` when the destination exists or the copy does not hash to
    ``expected_hash``; the source is then untouched.
    """
    if destination.exists() or destination.is_symlink():
        raise MoveRefused(f"{destination} already exists; nothing was moved")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination, follow_symlinks=False)
        how = "linked"
    except FileExistsError:
        raise MoveRefused(f"{destination} already exists; nothing was moved") from None
    except OSError as error:
        if error.errno not in _NO_LINK:
            raise MoveRefused(f"{source}: cannot be moved: {error.strerror or error}") from None
        _copy_verified(source, destination, expected_hash)
        how = "copied"
    fsync_folder(destination.parent)
    source.unlink()
    fsync_folder(source.parent)
    return how


def _copy_verified(source: Path, destination: Path, expected_hash: str) -> None:
    part = part_path(destination)
    part.unlink(missing_ok=True)  # a leftover of an interrupted copy
    try:
        with open(source, "rb") as reader, open(part, "xb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copystat(source, part)
        if content_hash(part) != expected_hash:
            raise MoveRefused(f"{source}: the copy on {destination.parent} does not match the original; nothing was moved")
        os.link(part, destination)  # takes the name only if it is free
    except FileExistsError:
        raise MoveRefused(f"{destination} already exists; nothing was moved") from None
    except OSError as error:
        raise MoveRefused(f"{source}: cannot be copied to {destination}: {error.strerror or error}") from None
    finally:
        part.unlink(missing_ok=True)


def restore(source: Path, destination: Path, expected_hash: str) -> str:
    """Put a file moved from ``source`` to ``destination`` back, wherever the move stopped.

    Returns what was done, in words. Raises ``MoveRefused`` when the file cannot be put
    back as it was (it changed in its new place, or neither place holds it).
    """
    part_path(destination).unlink(missing_ok=True)
    part_path(source).unlink(missing_ok=True)
    if not _exists(destination):
        if _exists(source):
            return "already in place"
        raise MoveRefused(f"{source}: neither it nor {destination} exists; it cannot be put back")
    if not _exists(source):
        move_file(destination, source, expected_hash)
        return "put back"
    # Both names exist: the move stopped between placing the file and removing its source.
    if _same_file(source, destination) or content_hash(destination) == expected_hash == content_hash(source):
        destination.unlink()
        fsync_folder(destination.parent)
        return "put back (the move had not finished)"
    raise MoveRefused(f"{source} and {destination} both exist and differ; both are left as they are")


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False
