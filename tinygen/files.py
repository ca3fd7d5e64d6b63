"""Writing tinygen's outputs into a folder that may also hold the user's own files.

tinygen replaces only what it wrote itself. A hidden manifest in the output folder names every
file tinygen wrote there (with its sha256, so a file the user has since edited counts as theirs),
every folder it created, and the folders its generated Makefile fills (`build/`). On the next
write, its old files are replaced or, when no longer written, removed; nothing else is touched.
The first write into a folder holding anything else is refused unless `force`; and no write,
forced or not, overwrites or removes a user's file.

Each file is written to a hidden temporary beside its final name, flushed to disk, and only then
renamed over the old one, so no file is ever half-written. The manifest is written before the
renames (naming the old and new contents both) and again after them, and Ctrl-C waits for the
renames to finish: an exception or Ctrl-C leaves the previous output, or the new one, complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import TinygenError

MANIFEST = ".tinygen-manifest.json"
_MANIFEST_NOTE = ("The files and folders tinygen wrote here. tinygen replaces or removes only these; "
                  "anything else in this folder is yours and is never touched.")
_TMP_SUFFIX = ".tinygen-tmp"
_TMP = re.compile(r"^\..+\.[0-9a-f]{8}" + re.escape(_TMP_SUFFIX) + "$")
_MANIFEST_MAX_BYTES = 16 * 1024 * 1024
_SHOWN = 4   # foreign files named in a refusal; the rest are counted


class OutputError(TinygenError):
    """An output folder tinygen will not write into as asked, or could not write."""


@dataclass
class _Manifest:
    files: dict[str, set[str]] = field(default_factory=dict)   # path -> accepted sha256s (two mid-write)
    folders: set[str] = field(default_factory=set)             # folders tinygen created
    trees: set[str] = field(default_factory=set)               # folders the generated build fills
    folder: int | None = None                                  # the inode of the folder it describes
    found: bool = False

    def to_json(self) -> str:
        return json.dumps({"note": _MANIFEST_NOTE, "version": 1,
                           "files": {k: min(v) if len(v) == 1 else sorted(v) for k, v in sorted(self.files.items())},
                           "folders": sorted(self.folders), "trees": sorted(self.trees), "folder": self.folder},
                          indent=1) + "\n"


@dataclass
class _Plan:
    root: Path
    display: str
    manifest: _Manifest
    intact: dict[str, str]          # tinygen's files still as it wrote them: path -> sha256
    foreign: list[str]              # everything else (folders end in '/')
    litter: list[Path]              # temporaries a killed write left behind


def write_tree(out_dir: Path, files: dict[str, bytes | str], force: bool = False, trees: tuple[str, ...] = ()) -> None:
    """Make `files` (relative path -> content) tinygen's output in out_dir: its files from the last
    write are replaced or removed, its `trees` emptied, and nothing else touched. Refuses a folder
    tinygen has not written before that holds anything else unless `force`, and a user's file where
    one of `files` (or `trees`) goes even then."""
    _write(out_dir, files, force, trees, partial=False)


def add_to_tree(out_dir: Path, files: dict[str, bytes | str] | None = None, trees: tuple[str, ...] = ()) -> None:
    """Replace some of tinygen's own files in out_dir (fit.json after a compile) and claim `trees`
    (build/ before make), leaving the rest of the output as it is."""
    _write(out_dir, files or {}, True, trees, partial=True)


def check_out_dir(out_dir: Path, force: bool = False, names: tuple[str, ...] = ()) -> None:
    """The refusals of write_tree, before any work is done: raises OutputError if tinygen would not
    write `names` into out_dir."""
    plan = _plan(out_dir, force)
    _check_collisions(plan, [_clean(n) for n in names], ())


# --- deciding what is whose -----------------------------------------------------------------

def _display(out_dir: Path) -> str:
    return f"the current folder ({Path.cwd()})" if str(out_dir) in ("", ".") else str(out_dir)


def _clean(rel: str) -> str:
    """A relative path inside the output folder, or a ValueError: manifests and callers both go
    through here, so no entry can point outside the folder."""
    p = PurePosixPath(rel)
    if (not rel or "\x00" in rel or "\\" in rel or p.is_absolute()
            or any(part in ("", ".", "..") for part in rel.split("/")) or rel == MANIFEST):
        raise ValueError(rel)
    return p.as_posix()


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_manifest(root: Path, display: str) -> _Manifest:
    path = root / MANIFEST
    try:
        if not path.is_file() or path.is_symlink():
            if os.path.lexists(path):
                raise OutputError(f"{display} holds a {MANIFEST} that is not a file tinygen wrote: move it away, "
                                  "or choose another --out.")
            return _Manifest()
        with path.open("rb") as f:
            raw = f.read(_MANIFEST_MAX_BYTES + 1)
    except OSError as e:
        raise OutputError(f"Cannot read {path}: {e.strerror}.") from None
    try:
        if len(raw) > _MANIFEST_MAX_BYTES:
            raise ValueError("too large")
        data = json.loads(raw.decode())
        m = _Manifest(found=True)
        for rel, hashes in data["files"].items():
            hashes = [hashes] if isinstance(hashes, str) else hashes
            if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
                raise ValueError(rel)
            m.files[_clean(rel)] = set(hashes)
        m.folders = {_clean(d) for d in data["folders"]}
        m.trees = {_clean(d) for d in data["trees"]}
        m.folder = data.get("folder")
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, RecursionError):
        raise OutputError(f"{path} is damaged, so tinygen cannot tell its files from yours there: check the folder, "
                          "then delete that file and pass --force, or choose another --out.") from None
    # A manifest copied here with tinygen's files still vouches for each of them (by its hash), but
    # not for whole folders: a build/ beside it may be the user's own.
    if m.folder != root.stat().st_ino:
        m.trees = set()
    return m


def _kind(root: Path, rel: str) -> str:
    """'file', 'dir', 'missing', or 'other' (a symbolic link, a device, or a path through a
    symbolic link: never tinygen's, and never written through)."""
    for parent in _parents(rel):
        st = os.lstat(root / parent) if os.path.lexists(root / parent) else None
        if st is None:
            return "missing"
        if not _is_dir(st):
            return "other"
    if not os.path.lexists(root / rel):
        return "missing"
    st = os.lstat(root / rel)
    return "dir" if _is_dir(st) else "file" if _is_file(st) else "other"


def _is_dir(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode)


def _is_file(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)


def _plan(out_dir: Path, force: bool) -> _Plan:
    """Read the folder: which of its entries are tinygen's, and refuse it if there are others and
    no `force`."""
    display = _display(out_dir)
    out_dir = Path(out_dir)
    try:
        if os.path.lexists(out_dir) and not out_dir.is_dir():
            raise OutputError(f"--out {display} is {'a file' if out_dir.is_file() else 'not a folder'}: tinygen writes "
                              "a folder of files; choose another --out.")
        root = out_dir.resolve()
    except OSError as e:
        raise OutputError(f"Cannot use {display} as the output folder: {e.strerror}.") from None
    if not root.is_dir():
        return _Plan(root, display, _Manifest(), {}, [], [])
    m = _read_manifest(root, display)
    intact: dict[str, str] = {}
    foreign: list[str] = []
    litter: list[Path] = []
    try:
        for rel, accepted in m.files.items():
            if _kind(root, rel) == "file":
                h = _sha256((root / rel).read_bytes())
                if h in accepted:
                    intact[rel] = h
        ours = m.folders | {p for rel in intact for p in _parents(rel)}

        def walk(folder: str) -> None:
            with os.scandir(root / folder if folder else root) as it:
                entries = sorted(it, key=lambda e: e.name)
            named = _named_here(root / folder if folder else root)
            for e in entries:
                rel = f"{folder}/{e.name}" if folder else e.name
                is_dir = e.is_dir(follow_symlinks=False)
                if rel == MANIFEST or rel in intact or (rel in m.trees and is_dir):
                    continue
                if e.is_file(follow_symlinks=False) and (
                        (e.name == FILE_RECORD and named is not None)
                        or (e.name in (named or {}) and _file_sha256(Path(e.path)) in named[e.name])):
                    continue    # a --plot or --log tinygen wrote here, unchanged, and its record
                if m.found and _TMP.match(e.name) and e.is_file(follow_symlinks=False):
                    litter.append(Path(e.path))
                elif is_dir and rel in ours:
                    walk(rel)
                else:
                    foreign.append(rel + ("/" if is_dir else ""))
        walk("")
    except OSError as e:
        raise OutputError(f"Cannot read {display}: {e.strerror} ({e.filename}).") from None
    plan = _Plan(root, display, m, intact, foreign, litter)
    # A folder tinygen has written before already holds its files beside the user's; anywhere
    # else (`--out .`, a typo, a project folder), it asks first.
    if foreign and not force and not m.found:
        shown = ", ".join(foreign[:_SHOWN]) + (f" and {len(foreign) - _SHOWN} more" if len(foreign) > _SHOWN else "")
        raise OutputError(f"{display} holds files tinygen did not write ({shown}): move them away, or pass --force "
                          "to write tinygen's files beside them (yours are never overwritten or removed).")
    return plan


def _check_collisions(plan: _Plan, names: list[str], trees: tuple[str, ...]) -> None:
    """Refuse, even with force, where one of tinygen's files or trees would land on a user's."""
    root, m = plan.root, plan.manifest
    if not root.is_dir():
        return
    for rel in list(names) + list(trees):
        for parent in _parents(rel):
            if _kind(root, parent) in ("file", "other"):
                _collision(plan, parent, "a folder")
        kind = _kind(root, rel)
        if rel in trees:
            if kind != "missing" and not (kind == "dir" and rel in m.trees):
                _collision(plan, rel, "its build output")
        elif kind != "missing" and rel not in plan.intact:
            _collision(plan, rel, "a file")


def _collision(plan: _Plan, rel: str, what: str) -> None:
    if rel in plan.intact:   # tinygen's own file from the last write, where a folder now goes
        raise OutputError(f"{rel} in {plan.display} is a file tinygen wrote before, where it now writes a folder: "
                          "delete it first.")
    if rel in plan.manifest.files:
        raise OutputError(f"{rel} in {plan.display} was changed since tinygen wrote it, and tinygen would write it "
                          "again: move your version away first.")
    raise OutputError(f"{rel} in {plan.display} is not tinygen's, and tinygen would write {what} there: move it away, "
                      "or choose another --out.")


# --- writing --------------------------------------------------------------------------------

def _write(out_dir: Path, files: dict[str, bytes | str], force: bool, trees: tuple[str, ...], partial: bool) -> None:
    plan = _plan(out_dir, force or partial)
    blobs = {_clean(rel): (c.encode() if isinstance(c, str) else bytes(c)) for rel, c in files.items()}
    trees = tuple(_clean(t) for t in trees)
    _check_collisions(plan, list(blobs), trees)
    root, old = plan.root, plan.manifest
    hashes = {rel: _sha256(b) for rel, b in blobs.items()}
    stale = set() if partial else set(plan.intact) - set(blobs)
    created_root = not root.exists()
    needed = {p for rel in blobs for p in _parents(rel)}
    new_folders = {d for d in needed if _kind(root, d) == "missing"}

    # Before anything visible changes, the manifest accepts both the old and the new contents,
    # so a write killed halfway leaves every file recognisably tinygen's.
    during = _Manifest(files={rel: {h} for rel, h in plan.intact.items()}, folders=old.folders | new_folders,
                       trees=old.trees | set(trees), found=True)
    for rel, h in hashes.items():
        during.files.setdefault(rel, set()).add(h)

    after = _Manifest(files=({rel: {h} for rel, h in plan.intact.items()} if partial else {}),
                      folders=(old.folders | new_folders) if partial else (old.folders & needed) | new_folders,
                      trees=(old.trees | set(trees)) if partial else set(trees), found=True)
    after.files.update({rel: {h} for rel, h in hashes.items()})

    staged: list[tuple[Path, Path]] = []
    made: list[Path] = []
    committing = False
    try:
        root.mkdir(parents=True, exist_ok=True)
        during.folder = after.folder = root.stat().st_ino
        for p in plan.litter:
            p.unlink(missing_ok=True)
        _atomic_write(root / MANIFEST, during.to_json().encode())
        for d in sorted(new_folders, key=lambda d: d.count("/")):
            os.mkdir(root / d)
            made.append(root / d)
        for rel, data in blobs.items():
            if plan.intact.get(rel) == hashes[rel]:
                continue   # unchanged: keep it, and its timestamp, so make rebuilds nothing for it
            staged.append((_stage(root / rel, data), root / rel))
        touched = {str(final.parent) for _, final in staged} | {str(root)}
        with _sigint_deferred():
            committing = True
            for tmp, final in staged:
                os.replace(tmp, final)
            staged.clear()
            for rel in stale:
                (root / rel).unlink(missing_ok=True)
            if not partial:
                for t in old.trees:
                    if _kind(root, t) == "dir":
                        shutil.rmtree(root / t)
                for d in sorted(old.folders - after.folders, key=lambda d: -d.count("/")):
                    with contextlib.suppress(OSError):   # still holds a user's file: it is theirs now
                        os.rmdir(root / d)
            _fsync_dirs(touched)
            _atomic_write(root / MANIFEST, after.to_json().encode())
    except BaseException as e:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if not committing:   # nothing of the old output changed: put its manifest back
            _undo(root, made, old, created_root)
        if isinstance(e, OSError):
            raise OutputError(f"Could not write {plan.display}: {e.strerror or e} ({e.filename}).") from None
        raise


def _undo(root: Path, made: list[Path], old: _Manifest, created_root: bool) -> None:
    """After a failed write that renamed nothing: the folders it made, and the old manifest, back."""
    for d in reversed(made):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        if old.found:
            _atomic_write(root / MANIFEST, old.to_json().encode())
        else:
            (root / MANIFEST).unlink(missing_ok=True)
            if created_root:
                root.rmdir()


def _stage(final: Path, data: bytes) -> Path:
    """The new content in a hidden temporary beside `final`, on disk, created with the user's umask."""
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}{_TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _atomic_write(path: Path, data: bytes) -> None:
    os.replace(_stage(path, data), path)


def _fsync_dirs(dirs: set[str]) -> None:
    """The renames themselves on disk, where the platform allows it."""
    for d in dirs:
        try:
            fd = os.open(d, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EBADF):
                raise
        finally:
            os.close(fd)


@contextlib.contextmanager
def _sigint_deferred():
    """Ctrl-C during the renames takes effect once they are done, so the output is old or new, not both."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)


# --- single files the user names (--plot FILE, --log FILE) -----------------------------------
# A file named on the command line lands in a folder that is usually the user's own (their
# project, the current folder), so it gets no folder manifest: a hidden record beside it names
# each file tinygen wrote there by name, with its sha256. tinygen overwrites a file only while the
# record vouches for it as written; anything else at that name is the user's, and refused.

FILE_RECORD = ".tinygen-files.json"
_FILE_RECORD_NOTE = ("The files tinygen wrote in this folder by name (--plot, --log), each with the sha256 of what it "
                     "wrote. tinygen overwrites only these, and only while they are as it wrote them.")


def check_out_file(path: Path, option: str) -> None:
    """The refusals of write_file, before any work is done: raises OutputError unless `path` is
    free or holds tinygen's own earlier output, unchanged."""
    _out_file_state(Path(path), option)


def write_file(path: Path, data: bytes | str, option: str) -> None:
    """`data` as the file at `path` (what the user passed to `option`), written to a temporary
    beside it and renamed, only where check_out_file allows."""
    path = Path(path)
    _out_file_state(path, option)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _stage(path, data.encode() if isinstance(data, str) else bytes(data))
    except OSError as e:
        raise OutputError(f"Could not write {option} {path}: {e.strerror or e}.") from None
    _commit_out_file(path, tmp, option, keep_tmp=False)


def write_drawn_file(path: Path, option: str, draw) -> None:
    """A picture: `draw(p)` saves it at a path p in a private temporary folder, then write_file."""
    import tempfile

    check_out_file(path, option)   # before the drawing, which takes a while
    with tempfile.TemporaryDirectory(prefix="tinygen-") as tmp:
        p = Path(tmp) / f"picture{Path(path).suffix or '.png'}"
        draw(p)
        data = p.read_bytes()
    write_file(path, data, option)


class OutFile:
    """A text file written as it is produced (`monitor --log`): into a hidden temporary beside
    `path` (.NAME.<hex>.tinygen-tmp), flushed as the caller flushes, renamed to `path` by close().
    Refused up front where write_file would refuse."""

    def __init__(self, path: Path, option: str, newline: str | None = ""):
        self.path, self.option = Path(path), option
        _out_file_state(self.path, option)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}{_TMP_SUFFIX}")
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as e:
            raise OutputError(f"Could not write {option} {self.path}: {e.strerror or e}.") from None
        self.f = os.fdopen(fd, "w", encoding="utf-8", newline=newline)

    def close(self) -> None:
        """Everything written on disk, then renamed to `path` (once; later calls do nothing)."""
        if self.f.closed:
            return
        with contextlib.suppress(OSError):
            self.f.flush()
            os.fsync(self.f.fileno())
        self.f.close()
        _commit_out_file(self.path, self.tmp, self.option, keep_tmp=True)

    def discard(self) -> None:
        """Nothing to keep (the work never started): the temporary removed, `path` untouched."""
        if not self.f.closed:
            self.f.close()
            self.tmp.unlink(missing_ok=True)


def _out_file_state(path: Path, option: str) -> set[str]:
    """The sha256s the record accepts for `path` when it holds tinygen's own earlier output
    unchanged, an empty set when nothing is there; else an OutputError saying how to go on."""
    if path.name in ("", ".", ".."):
        raise OutputError(f"{option} {path} is a folder: name a file in it.")
    if path.name in (FILE_RECORD, MANIFEST):
        raise OutputError(f"{option} {path}: {path.name} is the name of tinygen's record of its files; choose another "
                          "name.")
    try:
        kind = _kind(path.parent, path.name) if path.parent.is_dir() else "missing"
        if kind == "missing":
            for parent in path.parents:   # a file where one of its folders would go
                if os.path.lexists(parent) and not parent.is_dir():
                    raise OutputError(f"{option} {path}: {parent} is a file, not a folder: choose another path.")
            return set()
        if kind == "dir":
            raise OutputError(f"{option} {path} is a folder: name a file in it.")
        if kind == "other":
            raise OutputError(f"{option} {path} is not a file tinygen wrote (a link or a device): choose another "
                              "name, or remove it yourself.")
        accepted = _read_file_record(path.parent, option).get(path.name, set())
        if accepted and _file_sha256(path) in accepted:
            return accepted
    except OSError as e:
        raise OutputError(f"Cannot use {option} {path}: {e.strerror or e}.") from None
    if accepted:
        raise OutputError(f"{option} {path} was changed since tinygen wrote it, so it is yours now: choose another "
                          "name, or delete it yourself if it can go.")
    raise OutputError(f"{option} {path} is a file tinygen did not write: choose another name, or delete it yourself "
                      "if it can go.")


def _named_here(folder: Path) -> dict[str, set[str]] | None:
    """The files tinygen wrote in `folder` by name (--plot, --log), or None where there is no
    record or it is damaged (then the record and those files count as the user's)."""
    try:
        return _read_file_record(folder, "--plot") if os.path.lexists(folder / FILE_RECORD) else None
    except OutputError:
        return None


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_file_record(folder: Path, option: str) -> dict[str, set[str]]:
    path = folder / FILE_RECORD
    if not os.path.lexists(path):
        return {}
    damaged = OutputError(f"{path} is damaged, so tinygen cannot tell its files from yours there: delete it, or name "
                          f"a file in another folder for {option}.")
    if path.is_symlink() or not path.is_file():
        raise damaged
    try:
        with path.open("rb") as f:
            raw = f.read(_MANIFEST_MAX_BYTES + 1)
        if len(raw) > _MANIFEST_MAX_BYTES:
            raise ValueError("too large")
        record = {}
        for name, hashes in json.loads(raw.decode())["files"].items():
            hashes = [hashes] if isinstance(hashes, str) else hashes
            if "/" in name or name in ("", ".", "..") or not isinstance(hashes, list) \
                    or not all(isinstance(h, str) for h in hashes):
                raise ValueError(name)
            record[name] = set(hashes)
        return record
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, RecursionError):
        raise damaged from None


def _write_file_record(folder: Path, record: dict[str, set[str]]) -> None:
    text = json.dumps({"note": _FILE_RECORD_NOTE, "version": 1,
                       "files": {k: min(v) if len(v) == 1 else sorted(v) for k, v in sorted(record.items()) if v}},
                      indent=1) + "\n"
    _atomic_write(folder / FILE_RECORD, text.encode())


def _commit_out_file(path: Path, tmp: Path, option: str, keep_tmp: bool) -> None:
    """Rename the staged `tmp` to `path`, checking again first: a user's file may have appeared
    there, or tinygen's been edited, since the write began. The record accepts the new content
    before the rename (beside the old, while either may be there) and only the new after it.
    A refused or failed write removes its temporary, or with keep_tmp (a log: the session's only
    copy) keeps it and names it."""
    folder, name = path.parent, path.name
    try:
        old = _out_file_state(path, option)
        new = _file_sha256(tmp)
        record = _read_file_record(folder, option)
        record[name] = old | {new}
        _write_file_record(folder, record)
        if old:
            os.replace(tmp, path)
        else:
            _rename_no_clobber(tmp, path, option)
        _fsync_dirs({str(folder)})
        record = _read_file_record(folder, option)   # again: another tinygen may have added its file
        record[name] = {new}
        _write_file_record(folder, record)
    except (OutputError, OSError) as e:
        if not isinstance(e, OutputError):
            e = OutputError(f"Could not write {option} {path}: {e.strerror or e}.")
        if keep_tmp and tmp.exists():
            raise OutputError(f"{str(e).rstrip('.')}; what tinygen wrote is in {tmp}.") from None
        tmp.unlink(missing_ok=True)
        raise e from None


def _rename_no_clobber(tmp: Path, path: Path, option: str) -> None:
    """`tmp` to a `path` that was free, never over a file that appeared there meanwhile: a hard
    link fails where a rename would replace (on a file system without links, a plain rename)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputError(f"{option} {path} appeared while tinygen was writing it and is not tinygen's: choose "
                          "another name, or delete it yourself if it can go.") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        os.replace(tmp, path)
        return
    tmp.unlink()
