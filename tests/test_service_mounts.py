"""Network and FUSE filesystems, read from mountinfo text."""

import pytest

from dupe_scanner.service.mounts import filesystem_of, is_network_filesystem, mount_of, parse_mountinfo, read_mountinfo

SAMPLE = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 0:35 / /srv/nas rw,relatime shared:20 - nfs4 nas.local:/volume1/photos rw,vers=4.2
41 40 0:36 / /srv/nas/local-cache rw,relatime - ext4 /dev/sdb1 rw
42 22 0:37 / /mnt/smb\\040share rw,relatime - cifs //server/Photos\\040Archive rw,vers=3.1.1
43 22 0:38 / /home/ann/remote rw,nosuid,nodev,relatime - fuse.sshfs ann@box:/photos rw,user_id=1000
44 22 8:17 / /media/usb rw,relatime - fuseblk /dev/sdc1 rw,user_id=0
45 22 0:39 / /mnt/ceph rw,relatime - ceph 10.0.0.1:/ rw,name=admin
46 22 0:40 / /mnt/vm rw,relatime - 9p hostshare rw,trans=virtio
47 22 0:41 / /mnt/gluster rw - fuse.glusterfs gfs1:/vol rw
48 22 0:42 / /mnt/smb3 rw master:7 - smb3 //h/s rw
49 22 0:43 / /srv/stacked rw - ext4 /dev/sdd1 rw
50 22 0:44 / /srv/stacked rw - nfs h:/x rw
this line is garbage
51 22 0:45 / /mnt/short rw -
"""


@pytest.fixture(scope="module")
def mounts():
    return parse_mountinfo(SAMPLE)


@pytest.mark.parametrize(
    "path, fstype, network",
    [
        ("/home/ann/photos", "ext4", False),
        ("/srv/nas/2024/img.jpg", "nfs4", True),
        ("/srv/nas", "nfs4", True),
        ("/srv/nas/local-cache/x", "ext4", False),  # a local mount inside the share
        ("/srv/nasty", "ext4", False),  # a prefix of a mount point is not inside it
        ("/mnt/smb share/2020", "cifs", True),  # octal escapes decoded
        ("/home/ann/remote/a.jpg", "fuse.sshfs", True),
        ("/media/usb/DCIM", "fuseblk", False),  # ntfs-3g on a local disk
        ("/mnt/ceph/x", "ceph", True),
        ("/mnt/vm", "9p", True),
        ("/mnt/gluster/a", "fuse.glusterfs", True),
        ("/mnt/smb3/a", "smb3", True),
        ("/srv/stacked/a", "nfs", True),  # the later mount on the same point wins
    ],
)
def test_mount_of(mounts, path, fstype, network):
    mount = mount_of(path, mounts)
    assert mount is not None
    assert mount.fstype == fstype
    assert mount.is_network is network


def test_sources_and_mount_points_are_unescaped(mounts):
    cifs = mount_of("/mnt/smb share", mounts)
    assert cifs is not None
    assert cifs.mount_point == "/mnt/smb share"
    assert cifs.source == "//server/Photos Archive"


def test_malformed_lines_are_skipped(mounts):
    assert all(m.mount_point != "/mnt/short" for m in mounts)
    assert len(mounts) == 13


@pytest.mark.parametrize("fstype", ["nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "fuse.rclone", "9p",
                                    "afs", "ceph", "glusterfs", "davfs", "fuse", "virtiofs", "lustre"])
def test_network_filesystems(fstype):
    assert is_network_filesystem(fstype)


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs", "zfs", "tmpfs", "overlay", "fuseblk", "vfat", "exfat"])
def test_local_filesystems(fstype):
    assert not is_network_filesystem(fstype)


def test_empty_table_knows_nothing():
    assert mount_of("/x", parse_mountinfo("")) is None
    assert filesystem_of("/x", "") is None


def test_filesystem_of_resolves_symlinks(tmp_path):
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    text = f"1 0 0:1 / / rw - ext4 /dev/root rw\n2 1 0:2 / {target} rw - nfs4 h:/p rw\n"
    mount = filesystem_of(link, text)
    assert mount is not None
    assert mount.fstype == "nfs4"


def test_the_live_table_is_read(tmp_path):
    text = read_mountinfo()
    if not text:
        pytest.skip("no /proc/self/mountinfo here")
    assert filesystem_of(tmp_path, text) is not None
    assert read_mountinfo(tmp_path / "missing") == ""
