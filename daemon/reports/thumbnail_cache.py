"""Report thumbnails kept between scans, by content, so a changed page decodes only what is new.

A thumbnail is a function of the file's bytes (its content hash), the thumbnail size and
how we make it, so that is the key: ``<folder>/v<FORMAT_VERSION>-<size>/ab/abcdef....jpg``
(``ab`` the hash's first two characters, so no folder holds more than a few thousand
files). A changed file has a new hash: an entry is never stale, only unused. A file that
cannot be read gets a placeholder, which is never stored: it is tried again next time.

Entries no report shows any more are pruned. Listing the cache costs a pass over it,
so it is done only when the entries exceed those in use by ``PRUNE_MARGIN`` (counted in
a small ``entries`` file as they are written): a listing of n entries happens only
when at least n / 5 of them are unused and go, so listings read at most five entries per
thumbnail ever made, at any size. Only the pictures the HTML pages show are cached (at most
``MAX_PAGES`` x ``html_max_nodes``), not the whole library.

Entries are written atomically (renamed into place) but not flushed to disk, and a torn
or foreign file (no JPEG start and end markers) is decoded again, so a power cut costs a
decode, never a broken picture.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from dupe_scanner.errors import FileWriteError
from dupe_scanner.fileio import TEMP_SUFFIX, atomic_write_bytes
from dupe_scanner.groups import FileEntry

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when thumbnails are made differently (quality, resampling)
PRUNE_MARGIN = 0.25  # list and prune once entries exceed those in use by this share
# Beside the state. A state kept inside a watched folder must not have its thumbnails
# indexed as photos: ``.thumbnails`` is among the default excludes.
FOLDER_NAME = ".thumbnails"
COUNT_FILE = "entries"
MODE = 0o600  # thumbnails show private pictures; only the service reads them (mkstemp's own)
STALE_TEMP_SECONDS = 3600.0
CONTENT_HASH = re.compile(r"[0-9a-f]{16,128}")
CACHE_FOLDER = re.compile(r"v[0-9]+-[0-9]+")
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
SMALL_FILE_READ = 64 * 1024  # a 224-pixel thumbnail is about 5 kB

# A content hash; a file without one (never indexed) is its own path, never stored.
ContentKey = str | tuple[str, str]
# Decodes the files at these paths: each one's JPEG thumbnail, or None if unreadable.
Decoder = Callable[[Sequence[str]], Sequence["bytes | None"]]


class ThumbnailCache:
    """Thumbnails of one size by content; without a folder, it only counts the decodes.

    One instance per report run: it counts what it decoded, reused and stored.
    """

    def __init__(self, root: Path | None, size: int, mode: int = MODE, shrink_from: ThumbnailCache | None = None) -> None:
        self.root = Path(root) if root is not None else None
        self.size, self.mode = size, mode
        # Larger thumbnails made first (the review page's): a picture kept there is shrunk
        # from that small JPEG rather than decoded again (``thumbnails.thumbnail_data_uris``).
        self.shrink_from = shrink_from if shrink_from is not None and shrink_from.size >= size else None
        self.folder = self.root / f"v{FORMAT_VERSION}-{size}" if self.root is not None else None
        self.decoded = 0
        self.reused = 0
        self.stored = 0

    def jpegs(self, members: Sequence[FileEntry], decode: Decoder) -> list[bytes | None]:
        """Each member's thumbnail, in order: stored ones read, the rest decoded once per content."""
        keys = [_content_key(member) for member in members]
        found = {key: self._read(key) for key in keys}
        self.reused += sum(jpeg is not None for jpeg in found.values())
        missing = {key: member.path for key, member in zip(keys, members, strict=True) if found[key] is None}
        decoded = dict(zip(missing, decode(list(missing.values())), strict=True))
        self.decoded += len(decoded)
        self._store({key: jpeg for key, jpeg in decoded.items() if jpeg is not None})
        found.update(decoded)
        return [found[key] for key in keys]

    def ensure_files(
        self, members: Sequence[FileEntry], decode: Decoder, listing: set[str] | None = None
    ) -> list[str | None]:
        """Where each member's thumbnail file is, in order, decoding only contents without one; None if unreadable.

        For pages that link to the files rather than inline them: an existing entry is
        only looked up, not read, since at 300,000 pictures reading them all would cost
        minutes a scan. ``listing`` (from ``listing()``, taken once for many calls) saves
        even the stat of each. An entry torn by a power cut (they are not flushed) stays
        torn until it is pruned: one broken thumbnail, never a broken page.
        """
        keys = [_content_key(member) for member in members]
        if listing is None:
            present = {key: self._exists(key) for key in keys}
        else:
            present = {key: isinstance(key, str) and self._file_name(key) in listing for key in keys}
        self.reused += sum(present.values())
        missing = {key: member.path for key, member in zip(keys, members, strict=True) if not present[key]}
        decoded = dict(zip(missing, decode(list(missing.values())), strict=True)) if missing else {}
        self.decoded += len(decoded)
        self._store({key: jpeg for key, jpeg in decoded.items() if jpeg is not None})
        present.update({key: jpeg is not None and self._exists(key) for key, jpeg in decoded.items()})
        return [self._location(key) if present[key] else None for key in keys]

    def listing(self) -> set[str]:
        """The names of every entry now kept: one pass over the folders instead of a stat per picture."""
        if self.folder is None:
            return set()
        return {entry.name for shard in _subfolders(self.folder) for entry in _entries(shard) if entry.name.endswith(".jpg")}

    def prune(self, in_use: Iterable[str]) -> int:
        """Remove the entries of contents not in ``in_use``, when enough are stale to be worth a listing.

        Returns how many were removed. Never raises: a cache that cannot be pruned is
        only bigger.
        """
        if self.root is None or self.folder is None:
            return 0
        keep = {self._file_name(digest) for digest in in_use}
        known = _read_count(self.folder)
        if known is not None and known + self.stored <= len(keep) * (1 + PRUNE_MARGIN):
            if self.stored:
                _write_count(self.folder, known + self.stored)
            return 0
        removed, kept = _remove_unused(self.folder, keep)
        _remove_other_versions(self.root, self.folder)
        _write_count(self.folder, kept)
        if removed:
            log.info("report thumbnails: removed %d no longer shown, %d kept", removed, kept)
        return removed

    def path_of(self, content_hash: ContentKey) -> Path | None:
        """Where the thumbnail of ``content_hash`` is (or would be) kept; None if nowhere."""
        location = self._location(content_hash)
        return Path(location) if location is not None else None

    def _location(self, content_hash: ContentKey) -> str | None:
        """``path_of`` as text: a report run looks up every picture it shows, and building a
        path object for each took a second of a report run at a million files."""
        if self.folder is None or not isinstance(content_hash, str):
            return None
        name = self._file_name(content_hash)
        return f"{self.folder}/{name[:2]}/{name}"

    def kept_file(self, content_hash: ContentKey) -> Path | None:
        """The file holding the thumbnail of ``content_hash``, if one is kept; else None."""
        path = self.path_of(content_hash)
        return path if path is not None and self._exists(content_hash) else None

    # --- reading and writing --------------------------------------------------------

    def _read(self, content_hash: ContentKey) -> bytes | None:
        location = self._location(content_hash)
        if location is None:
            return None
        try:
            data = _read_small_file(location)
        except OSError:
            return None
        return data if data.startswith(JPEG_START) and data.endswith(JPEG_END) else None

    def _exists(self, content_hash: ContentKey) -> bool:
        location = self._location(content_hash)
        try:
            return location is not None and os.stat(location).st_size > len(JPEG_START + JPEG_END)
        except OSError:
            return False

    def _store(self, thumbnails: dict[ContentKey, bytes]) -> None:
        files = [(path, jpeg) for digest, jpeg in thumbnails.items() if (path := self.path_of(digest)) is not None]
        if not files:
            return
        try:
            for folder in {path.parent for path, _ in files}:
                folder.mkdir(parents=True, exist_ok=True)
            for path, jpeg in files:
                _write_entry(path, jpeg, self.mode)
                self.stored += 1
        except OSError as error:
            log.warning("report thumbnails: not kept for the next report: %s", error)

    @staticmethod
    def _file_name(content_hash: str) -> str:
        # The indexer's hashes are hex; anything else is hashed, so a name is always safe.
        if not CONTENT_HASH.fullmatch(content_hash):
            content_hash = hashlib.sha256(content_hash.encode("utf-8", "surrogatepass")).hexdigest()
        return content_hash + ".jpg"


# --- counting and pruning: ``folder`` is a cache's, of one size and version ---------------


def _read_count(folder: Path) -> int | None:
    try:
        return int((folder / COUNT_FILE).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None  # first run, or lost: a listing tells


def _write_count(folder: Path, count: int) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / COUNT_FILE, f"{count}\n".encode("ascii"), mode=MODE)
    except (OSError, FileWriteError) as error:
        log.warning("report thumbnails: cannot record the count: %s", error)


def _remove_unused(folder: Path, keep: set[str]) -> tuple[int, int]:
    removed = kept = 0
    now = time.time()
    for shard in _subfolders(folder):
        for entry in _entries(shard):
            if entry.name in keep:
                kept += 1
            elif entry.name.endswith(".jpg") or _is_stale_temp(entry, now):
                removed += _unlink(entry.path)
    return removed, kept


def _remove_other_versions(root: Path, folder: Path) -> None:
    """Whole folders in ``root`` of another thumbnail size or format version than ``folder``: nothing reads them now."""
    for other in _subfolders(root):
        if other != folder and CACHE_FOLDER.fullmatch(other.name):
            shutil.rmtree(other, ignore_errors=True)
            log.info("report thumbnails: removed %s (another size or version)", other)


def thumbnails_beside(state_database: str | None) -> Path | None:
    """The cache's folder beside the state database (``state/.thumbnails``); None for one in memory."""
    if not state_database or state_database == ":memory:":
        return None
    return Path(state_database).parent / FOLDER_NAME


def _write_entry(path: Path, jpeg: bytes, mode: int = MODE) -> None:
    """Written under a temporary name and renamed, so a reader sees all of it or nothing.

    Unlike the reports, not flushed to disk (``fileio`` would fsync every entry): a
    first report of 100,000 pictures would wait minutes on the disk, and an entry a
    power cut tears fails the JPEG check and is only decoded again.
    """
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)  # mode 0600
    try:
        if mode != MODE:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(jpeg)
        os.replace(temp_name, path)
    except OSError:
        _unlink(temp_name)
        raise


def _read_small_file(location: str) -> bytes:
    """The bytes of a file of a few kilobytes: at 40,000 thumbnails a report run, ``open()``'s
    buffered file object cost twice these two system calls."""
    fd = os.open(location, os.O_RDONLY)
    try:
        chunks = [os.read(fd, SMALL_FILE_READ)]
        while len(chunks[-1]) == SMALL_FILE_READ:  # a larger file than a thumbnail: read to its end
            chunks.append(os.read(fd, SMALL_FILE_READ))
    finally:
        os.close(fd)
    return b"".join(chunks)


def _content_key(member: FileEntry) -> ContentKey:
    return member.content_hash or ("uncached", member.path)


def _subfolders(folder: Path) -> list[Path]:
    return [Path(entry.path) for entry in _entries(folder) if entry.is_dir(follow_symlinks=False)]


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as listing:
            return list(listing)
    except OSError:
        return []


def _is_stale_temp(entry: os.DirEntry, now: float) -> bool:
    """A temporary file an interrupted write left; one younger may be a write under way."""
    try:
        return entry.name.endswith(TEMP_SUFFIX) and now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS
    except OSError:
        return False


def _unlink(path: str) -> int:
    try:
        os.unlink(path)
    except OSError:
        return 0
    return 1
