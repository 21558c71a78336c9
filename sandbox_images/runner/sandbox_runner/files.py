"""Files in and out of the sandbox, as the sandbox uid and never through a symlink: the
request's files written for the code, and the files a request asks back."""

import base64
import fnmatch
import os
import select
import stat
import time

from sandbox_runner.config import ABSOLUTE_ROOTS, MAX_WALK_ENTRIES
from sandbox_runner.frames import write_all


def name_parts(name):
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError("bad file name: %r" % name)
    return parts


def open_beneath(root, parts, flags, make_dirs=False):
    """Open root/<parts> without following a symlink anywhere below root."""
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            if make_dirs:
                try:
                    os.mkdir(part, 0o755, dir_fd=dir_fd)
                except FileExistsError:
                    pass
            below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = below
        return os.open(parts[-1], flags | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def write_files(workdir, files, replace=False, executable=()):
    """Write the request's files as the sandbox uid, never following a symlink; those named in
    `executable` (a compiled program) may be executed."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    for name, b64 in files.items():
        fd = open_beneath(workdir, name_parts(name), flags, make_dirs=True)
        if name in executable:
            os.fchmod(fd, 0o755)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64decode(b64))


def write_new(path, text):
    """A new file holding text (as the code's own files are encoded), with os-level calls: no
    file object in the child (see template.py)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        write_all(fd, memoryview(text.encode("utf-8", "surrogateescape")))
    finally:
        os.close(fd)


TOO_BIG = object()


def collect_files(root, req, since_ns=0):
    """{"files": {name: base64}, "files_truncated": bool}: regular files under root matching the
    request's patterns (and written since since_ns), within its count and size caps. A pattern
    may also name a file absolutely under /tmp or /mnt; it comes back under that name."""
    files, room, truncated = {}, req["max_return_bytes"], False
    for base, patterns in pattern_roots(root, req.get("return_files") or ()):
        names, cut = matching_files(base, patterns)
        truncated = truncated or cut
        for name in names:
            data = read_regular(base, name.split("/"), room, since_ns)
            if data is None:
                continue
            if data is TOO_BIG or len(files) >= req["max_return_files"]:
                truncated = True
                continue
            files[name if base == root else base + "/" + name] = base64.b64encode(data).decode()
            room -= len(data)
    return {"files": files, "files_truncated": truncated}


def pattern_roots(root, patterns):
    """[(directory, patterns relative to it)]: relative patterns under root, absolute ones under
    the place they name (only /tmp and /mnt)."""
    groups = {root: []}
    for pattern in patterns:
        base = next((b for b in ABSOLUTE_ROOTS if pattern.startswith(b + "/")), None)
        if base is None:
            groups[root].append(pattern)
        else:
            groups.setdefault(base, []).append(pattern[len(base) + 1:])
    return [(base, found) for base, found in groups.items() if found]


def matching_files(root, patterns):
    """Sorted names (relative to root) of the files matching any pattern, without entering a
    symlinked directory; and whether the walk was cut short."""
    split = [collapse_stars(p.split("/")) for p in patterns]
    found, seen = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        seen += len(dirnames) + len(filenames)
        if seen > MAX_WALK_ENTRIES:
            return sorted(found), True
        rel = os.path.relpath(dirpath, root)
        base = [] if rel == "." else rel.split("/")
        for name in filenames:
            parts = [*base, name]
            if any(pattern_matches(p, parts) for p in split) and utf8("/".join(parts)):
                found.append("/".join(parts))
    return sorted(found), False


def collapse_stars(parts):
    return [p for i, p in enumerate(parts) if p != "**" or i == 0 or parts[i - 1] != "**"]


def pattern_matches(pattern, parts):
    """Whether path parts match pattern parts: `**` spans directories; as in glob, a wildcard does
    not match a name starting with a dot."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        for i in range(len(parts) + 1):
            if pattern_matches(rest, parts[i:]):
                return True
            if i < len(parts) and parts[i].startswith("."):
                return False
        return False
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and pattern_matches(rest, parts[1:])


def utf8(name):
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_regular(root, parts, room, since_ns):
    """A regular file's bytes; None for anything else (a symlink on the way, a directory, a FIFO)
    or a file older than since_ns; TOO_BIG past room bytes."""
    try:
        fd = open_beneath(root, parts, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns < since_ns:
            return None
        if st.st_size > room:
            return TOO_BIG
        data = f.read(room + 1)
    return TOO_BIG if len(data) > room else data


def read_until_eof(fd, timeout_s):
    """All a pipe gives until its writer closes it; None if that takes longer than timeout_s."""
    deadline = time.monotonic() + timeout_s
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            return None
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
