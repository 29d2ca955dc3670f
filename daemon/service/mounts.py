"""Which filesystem a folder lives on, from ``/proc/self/mountinfo``.

inotify only sees changes made through the local kernel: on NFS, SMB, sshfs and other
network or FUSE mounts, files written by another machine raise no event. Folders there
are watched by polling instead. The parser is pure (text in, mounts out); the reader is
the only part that touches ``/proc``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

# Filesystems where another machine (or the host of a VM) can change files behind the
# kernel's back, so inotify misses changes. ``fuse.*`` is handled apart: every FUSE
# filesystem but ``fuseblk`` (ntfs-3g, exfat on a local disk) counts as remote.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "smb2", "ncpfs", "ncp", "afs", "openafs", "coda",
        "ceph", "glusterfs", "gfs2", "ocfs2", "lustre", "gpfs", "beegfs", "orangefs", "pvfs2",
        "9p", "virtiofs", "vboxsf", "vmhgfs", "prl_fs", "davfs", "davfs2", "sshfs", "fuse", "drvfs",
    }
)
LOCAL_FUSE = frozenset({"fuseblk"})


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fstype: str  # as the kernel names it, with the FUSE subtype: "fuse.sshfs"
    source: str

    @property
    def is_network(self) -> bool:
        return is_network_filesystem(self.fstype)


def is_network_filesystem(fstype: str) -> bool:
    fstype = fstype.lower()
    if fstype in LOCAL_FUSE:
        return False
    return fstype in NETWORK_FILESYSTEMS or fstype.startswith("fuse.")


_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts in mountinfo order (later mounts hide earlier ones on the same point).

    Lines that do not have the documented shape are skipped rather than trusted:
    ``ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS``.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < separator + 3:
            continue
        mounts.append(
            Mount(
                mount_point=_unescape(fields[4]),
                fstype=fields[separator + 1],
                source=_unescape(fields[separator + 2]),
            )
        )
    return mounts


def mount_of(path: str | os.PathLike[str], mounts: list[Mount]) -> Mount | None:
    """The mount holding ``path`` (an absolute path, symlinks already resolved)."""
    target = os.path.normpath(os.fspath(path))
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point
        inside = target == point or point == "/" or target.startswith(point.rstrip("/") + "/")
        # ">=": a later mount on the same point covers the earlier one.
        if inside and (best is None or len(point) >= len(best.mount_point)):
            best = mount
    return best


def read_mountinfo(source: Path = MOUNTINFO) -> str:
    """The mount table, or "" where there is none (not Linux, /proc not mounted)."""
    try:
        return source.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return ""


def filesystem_of(path: str | os.PathLike[str], mountinfo: str | None = None) -> Mount | None:
    """The mount of ``path`` (resolved), reading the live mount table unless one is given."""
    text = read_mountinfo() if mountinfo is None else mountinfo
    try:
        resolved = os.path.realpath(path)
    except OSError:
        resolved = os.path.abspath(path)
    return mount_of(resolved, parse_mountinfo(text))
