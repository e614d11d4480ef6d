"""Fidelity helpers: a tree holding every kind of entry the fidelity rule names, a record
of each entry (type, mode, owner, size, content, mtime in nanoseconds, symlink target,
hard-link group, xattrs, ACLs, sparseness) and what differs between two records.

Shared by the stand-in test (tests/integration/test_fidelity.py) and the one on the real
sample stack (tests/e2e/test_fidelity_e2e.py).
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import subprocess
from pathlib import Path

NOBODY = 4242  # uid and gid without a passwd or group entry
NOBODY2 = 4343
SPARSE_SIZE = 8 * 2**20
DEEP = 40


def _rel(path: bytes, root: bytes) -> bytes:
    return os.path.relpath(path, root) if path != root else b"."


_ACL_TAGS = {1: "user:", 2: "user:", 4: "group:", 8: "group:", 0x10: "mask:", 0x20: "other:"}


def _readable(name: str, value: bytes) -> bytes | str:
    """A system.posix_acl_* value as getfacl writes it (`user:4242:rwx,...`), else the bytes."""
    if not name.startswith("system.posix_acl_"):
        return value
    assert struct.unpack_from("<I", value)[0] == 2, value  # POSIX_ACL_XATTR_VERSION
    entries = []
    for tag, perm, qualifier in struct.iter_unpack("<HHI", value[4:]):
        who = str(qualifier) if tag in (2, 8) else ""
        bits = "".join(c if perm & b else "-" for c, b in zip("rwx", (4, 2, 1), strict=True))
        entries.append(f"{_ACL_TAGS[tag]}{who}:{bits}")
    return ",".join(entries)


def entry(path: bytes, st: os.stat_result) -> dict:
    kind = stat.S_IFMT(st.st_mode)
    entry = {"type": stat.filemode(st.st_mode)[0], "mode": oct(stat.S_IMODE(st.st_mode)),
             "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}  # fmt: skip
    entry["xattrs"] = tuple(sorted(
        (name, _readable(name, os.getxattr(path, name, follow_symlinks=False)))
        for name in os.listxattr(path, follow_symlinks=False)))  # fmt: skip
    if stat.S_ISLNK(st.st_mode):
        entry["target"] = os.readlink(path)
    elif stat.S_ISREG(kind):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        entry["sha256"] = digest.hexdigest()
        entry["size"] = st.st_size
        entry["sparse"] = st.st_blocks * 512 < st.st_size
    return entry


def snapshot_of(root: Path) -> dict[bytes, dict]:
    """Every entry under `root` (and `root` itself as b"."), by its relative byte path."""
    top = os.fsencode(root)
    found: dict[bytes, dict] = {}
    inodes: dict[int, list[bytes]] = {}
    paths = [top]
    for dirpath, dirnames, filenames in os.walk(top):
        paths += [os.path.join(dirpath, n) for n in dirnames + filenames]
    for path in paths:
        st = os.lstat(path)
        rel = _rel(path, top)
        found[rel] = entry(path, st)
        if not stat.S_ISDIR(st.st_mode):
            inodes.setdefault(st.st_ino, []).append(rel)
    for names in inodes.values():
        for name in names:
            found[name]["links"] = tuple(sorted(names))  # the hard-link group, by name
    return found


def differences(expected: dict[bytes, dict], actual: dict[bytes, dict], first: int = 8) -> str:
    lines = []
    for rel in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(rel), actual.get(rel)
        if want == got:
            continue
        if want is None or got is None:
            lines.append(f"{rel!r}: {'missing' if got is None else 'unexpected'}")
        else:
            diff = {k: (want.get(k), got.get(k)) for k in want.keys() | got.keys()
                    if want.get(k) != got.get(k)}  # fmt: skip
            said = [f"{k}: source {w!r}, copy {g!r}" for k, (w, g) in sorted(diff.items())]
            lines.append(f"{rel!r}: " + ", ".join(said))
    shown = "\n".join(lines[:first])
    more = f"\n... and {len(lines) - first} more" if len(lines) > first else ""
    return f"{len(lines)} entries differ:\n{shown}{more}" if lines else ""


def _acl(*args: str | bytes) -> None:
    subprocess.run(["setfacl", *args], check=True)


def set_mtime(path: bytes, ns: int) -> None:
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


def mtimes_deepest_first(root: bytes, base_ns: int) -> None:
    """Every entry under `root` (and root) a distinct nanosecond mtime, folders last and
    deepest first: creating entries in a folder changes its mtime."""
    walked = list(os.walk(root, topdown=False))
    for i, (dirpath, dirnames, filenames) in enumerate(walked):
        for j, name in enumerate(
            filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        ):
            set_mtime(os.path.join(dirpath, name), base_ns + i * 1_000_003 + j * 7_919 + 11)
    for i, (dirpath, _, _) in enumerate(walked):  # bottom-up: children before parents
        set_mtime(dirpath, base_ns - 10**9 + i * 999_983 + 123_457)


def build_tree(vol: Path, tag: str) -> None:
    """Every kind of entry the fidelity rule names, inside a volume."""
    v = os.fsencode(vol)
    j = os.path.join
    (vol / "random.bin").write_bytes(os.urandom(70_001))
    (vol / "empty").write_bytes(b"")
    with open(j(v, b"sparse.img"), "wb") as f:  # a hole, then 4 KiB of data, then a hole
        f.truncate(SPARSE_SIZE)
        f.seek(SPARSE_SIZE // 2)
        f.write(os.urandom(4096))
    st = os.stat(j(v, b"sparse.img"))
    assert st.st_blocks * 512 < st.st_size, "this filesystem does not keep holes"
    for name in (b"new\nline", b"caf\xe9-latin1", b"-rf --delete", b"n" * 254 + b"x"):
        with open(j(v, name), "wb") as f:
            f.write(name + os.urandom(100))
    assert len(b"n" * 254 + b"x") == 255
    deep = j(v, *[b"d%02d" % i for i in range(DEEP)])
    os.makedirs(deep)
    with open(j(deep, b"bottom"), "wb") as f:
        f.write(tag.encode() + b" at the bottom")
    os.mkfifo(j(v, b"fifo"))
    os.symlink(b"random.bin", j(v, b"rel-link"))
    os.symlink(b"/nonexistent/klink-sync/absolute", j(v, b"abs-link"))
    os.symlink(b"../no/such/file", j(v, b"dangling-link"))
    os.symlink(b"caf\xe9-latin1", j(v, b"link-to-non-utf8"))
    os.makedirs(j(v, b"group"))
    with open(j(v, b"group", b"one"), "wb") as f:
        f.write(os.urandom(5000))
    os.link(j(v, b"group", b"one"), j(v, b"group", b"two"))
    os.link(j(v, b"group", b"one"), j(v, b"three-elsewhere"))
    for name in (b"pair-a", b"pair-b"):  # same content and mtime, not linked (yet)
        with open(j(v, name), "wb") as f:
            f.write(b"twins " * 1000)
    # setuid / setgid / sticky on files and folders; owners without a passwd entry
    os.makedirs(j(v, b"modes", b"sticky"))
    os.makedirs(j(v, b"modes", b"setgid-dir"))
    os.makedirs(j(v, b"owned-dir", b"inner"))
    for name in (b"setuid", b"setgid", b"all-bits"):
        with open(j(v, b"modes", name), "wb") as f:
            f.write(name)
    with open(j(v, b"owned-dir", b"owned-file"), "wb") as f:
        f.write(b"owned by nobody known")
    for path in (b"owned-dir", b"owned-dir/inner", b"owned-dir/owned-file", b"modes/setuid",
                 b"modes/setgid-dir"):  # fmt: skip
        os.chown(j(v, path), NOBODY, NOBODY)
    os.lchown(j(v, b"rel-link"), NOBODY, NOBODY + 1)
    os.chmod(j(v, b"modes", b"setuid"), 0o4755)  # after the chown, which clears it
    os.chmod(j(v, b"modes", b"setgid"), 0o2750)
    os.chmod(j(v, b"modes", b"all-bits"), 0o7711)
    os.chmod(j(v, b"modes", b"sticky"), 0o1777)
    os.chmod(j(v, b"modes", b"setgid-dir"), 0o2770)
    os.chmod(j(v, b"owned-dir"), 0o3750)
    # xattrs and ACLs on a file and a folder, a default ACL on a folder
    os.setxattr(j(v, b"random.bin"), b"user.klink", b"tag-" + tag.encode())
    os.setxattr(j(v, b"random.bin"), b"user.binary", b"\x00\xff\x01")
    os.setxattr(j(v, b"owned-dir"), b"user.folder", b"on a folder")
    _acl("-m", f"u:{NOBODY}:rw,g:{NOBODY}:r", j(v, b"random.bin"))
    _acl("-m", f"u:{NOBODY}:rwx", j(v, b"modes", b"sticky"))
    _acl("-d", "-m", f"u:{NOBODY}:rx,g:{NOBODY2}:rwx", j(v, b"owned-dir", b"inner"))


def change_tree(v: bytes) -> None:
    """Between two runs: metadata only, no content (the volume folder's mtime moves:
    the caller gives it, and its parents, new ones)."""
    j = os.path.join
    os.chmod(j(v, b"random.bin"), 0o600)
    os.chmod(j(v, b"modes", b"setuid"), 0o755)  # setuid off
    os.chmod(j(v, b"modes", b"setgid"), 0o6750)  # setuid on
    os.chmod(j(v, b"modes", b"sticky"), 0o777)
    os.chown(j(v, b"owned-dir", b"owned-file"), NOBODY2, NOBODY2)
    os.chown(j(v, b"empty"), NOBODY2, NOBODY)
    os.lchown(j(v, b"rel-link"), NOBODY2, NOBODY2)
    os.setxattr(j(v, b"empty"), b"user.new", b"set between the runs")
    os.removexattr(j(v, b"random.bin"), b"user.binary")
    os.setxattr(j(v, b"owned-dir"), b"user.folder", b"changed")
    _acl("-m", f"u:{NOBODY2}:r", j(v, b"random.bin"))
    _acl("-x", f"u:{NOBODY}", j(v, b"modes", b"sticky"))
    _acl("-d", "-m", f"u:{NOBODY2}:rwx", j(v, b"modes", b"setgid-dir"))
    _acl("-m", f"u:{NOBODY}:r", j(v, b"caf\xe9-latin1"))
    # break the group of three: `three-elsewhere` becomes a copy (same content, mtime)
    st = os.stat(j(v, b"three-elsewhere"))
    with open(j(v, b"group", b"one"), "rb") as f:
        content = f.read()
    os.unlink(j(v, b"three-elsewhere"))
    with open(j(v, b"three-elsewhere"), "wb") as f:
        f.write(content)
    os.utime(j(v, b"three-elsewhere"), ns=(st.st_atime_ns, st.st_mtime_ns))
    # a new group: pair-b, same content and mtime as pair-a, becomes a link to it
    os.unlink(j(v, b"pair-b"))
    os.link(j(v, b"pair-a"), j(v, b"pair-b"))
    set_mtime(j(v, b"n" * 254 + b"x"), 1_111_111_111_123_456_789)
    set_mtime(j(v, b"dangling-link"), 1_222_222_222_987_654_321)
    set_mtime(j(v, *[b"d%02d" % i for i in range(DEEP // 2)]), 1_333_333_333_000_000_001)
