"""Frame file names and writing frames so that nothing is ever overwritten or left half-written.

Names come from ``StorageConfig.filename`` (fields: node target filter exposure seq type suffix
batch). Every field is sanitised to ``[A-Za-z0-9._+-]`` so that a filter called ``H/Alpha`` or a
target called ``../etc`` cannot escape the image directory. A frame is written to a temporary file
in the same directory, fsynced, then hard-linked to its final name: ``link`` fails if the name
exists, so an existing frame is never replaced, and a crash leaves either the whole frame or none.
"""

from __future__ import annotations

import errno
import os
import re
import string
import tempfile
from pathlib import Path
from typing import Any

NAME_FIELDS = ("node", "target", "filter", "exposure", "seq", "type", "suffix", "batch")

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._+-]+")
_DOT_RUNS = re.compile(r"\.{2,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def unsafe_name_reason(name: str) -> str | None:
    """Why ``name`` (a target, filter or suffix from config) is unsafe, or None if it is fine.

    Spaces and most punctuation are fine (they are replaced in file names); what is refused is
    what could only be a mistake or an attack: empty names, path separators, '..', control characters.
    """
    if not name.strip():
        return "must not be empty"
    if "/" in name or "\\" in name:
        return "must not contain '/' or '\\' (it becomes part of a file name)"
    if ".." in name:
        return "must not contain '..' (it becomes part of a file name)"
    if _CONTROL.search(name):
        return "must not contain control characters"
    return None


def sanitize_field(value: Any) -> str:
    """A file-name-safe rendering of one field: None -> '', other characters -> '_', no '..'."""
    if value is None:
        return ""
    text = _UNSAFE_CHARS.sub("_", str(value))
    text = _DOT_RUNS.sub("_", text)
    return text.strip(".")  # no hidden files, no dots that could join into '..'


class Seconds(float):
    """An exposure that formats compactly with ``{exposure}`` (600, 0.5) and normally with a spec."""

    def __format__(self, spec: str) -> str:
        if spec:
            return float.__format__(self, spec)
        return format_seconds(self)

    def __str__(self) -> str:
        return format_seconds(self)


def format_seconds(seconds: float) -> str:
    """600.0 -> '600', 0.5 -> '0.5', 0.0012 -> '0.0012' (no exponent notation in file names)."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{float(seconds):.6f}".rstrip("0").rstrip(".")


def template_fields(template: str) -> set[str]:
    """The field names a filename template uses."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def frame_stem(template: str, **fields: Any) -> str:
    """Format ``template`` with sanitised ``fields`` (see NAME_FIELDS); numbers keep their type.

    ``seq`` and ``batch`` stay integers so that ``{seq:04d}`` works; ``exposure`` formats as
    ``Seconds``; every other field is sanitised text. The result must be a plain file name.
    """
    unknown = set(fields) - set(NAME_FIELDS)
    if unknown:
        raise ValueError(f"unknown file name field(s) {sorted(unknown)}; allowed: {', '.join(NAME_FIELDS)}")
    values: dict[str, Any] = {name: "" for name in NAME_FIELDS}
    for name, value in fields.items():
        if name in ("seq", "batch"):
            values[name] = int(value) if value is not None else 0
        elif name == "exposure":
            values[name] = Seconds(value) if value is not None else ""
        else:
            values[name] = sanitize_field(value)
    stem = template.format(**values)
    reason = unsafe_name_reason(stem)
    if reason or stem.startswith("."):
        raise ValueError(
            f"file name template {template!r} gives {stem!r}, which {reason or 'is a hidden file'}; "
            "fix storage.filename"
        )
    return stem


def next_free_path(directory: str | os.PathLike, stem: str, ext: str = ".fits") -> Path:
    """``directory/stem.ext``, or ``stem_2.ext``, ``stem_3.ext``... whichever does not exist yet.

    Only a hint: another writer may take the name before us, which write_fits_atomically detects
    (FileExistsError) so that save_frame can pick the next name.
    """
    reason = unsafe_name_reason(stem)
    if reason:
        raise ValueError(f"file name {stem!r} {reason}")
    directory = Path(directory)
    candidate = directory / f"{stem}{ext}"
    n = 2
    while os.path.lexists(candidate):
        candidate = directory / f"{stem}_{n}{ext}"
        n += 1
    return candidate


def frame_path(directory: str | os.PathLike, template: str, ext: str = ".fits", **fields: Any) -> Path:
    """The path for a frame: if the template has ``{seq}``, seq is raised until the name is free;
    otherwise a ``_2``, ``_3`` suffix is added. Never returns an existing path."""
    directory = Path(directory)
    if "seq" not in template_fields(template):
        return next_free_path(directory, frame_stem(template, **fields), ext)
    seq = int(fields.pop("seq", 1) or 1)
    while True:
        candidate = directory / f"{frame_stem(template, seq=seq, **fields)}{ext}"
        if not os.path.lexists(candidate):
            return candidate
        seq += 1


def fsync_dir(directory: Path) -> None:
    """Make a new or renamed directory entry durable (a power cut must not lose a written frame)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory; the data itself is synced
        pass
    finally:
        os.close(fd)


def write_fits_atomically(path: str | os.PathLike, hdu: Any) -> Path:
    """Write ``hdu`` (an astropy HDU or HDUList) to ``path``, never replacing an existing file.

    Temp file in the same directory + fsync, then ``os.link`` to the final name (atomic, fails if
    the name exists) and the temp removed; the directory is fsynced so the entry survives a power
    cut. Where the filesystem has no hard links (FAT/exFAT USB sticks) the name is reserved with
    O_EXCL and the temp renamed onto that empty placeholder. Raises FileExistsError if taken.
    """
    path = Path(path)
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    # mkstemp makes 0600 files; a frame should be as readable as any file the user creates.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "wb") as fh:
            hdu.writeto(fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))  # FileExistsError if taken
            os.replace(tmp, path)
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
    fsync_dir(directory)
    return path


def save_frame(directory: str | os.PathLike, template: str, hdu: Any, ext: str = ".fits", **fields: Any) -> Path:
    """Pick a free name for the frame (see frame_path) and write it atomically; if another writer
    takes the name in between, try the next one. Returns the path written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for _ in range(1000):
        path = frame_path(directory, template, ext, **fields)
        try:
            return write_fits_atomically(path, hdu)
        except FileExistsError:
            continue
    raise FileExistsError(f"could not find a free file name in {directory} for template {template!r}")
