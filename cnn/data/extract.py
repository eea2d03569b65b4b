"""Extracting a tar archive safely: no member may write outside the target folder."""

import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from cnn.data.errors import CorruptDatasetError, UnsafeArchiveError

# Python < 3.11.4 has no extraction filters; an empty tuple in `except` matches nothing.
_FILTER_ERROR = getattr(tarfile, "FilterError", ())


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse a member that could write outside the target folder or create a device."""

    def refuse(why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(
            f"{archive}: refusing to extract member {member.name!r}: {why}. The archive is not "
            "a genuine CIFAR-10 archive; delete it and download it again."
        )

    name = member.name
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        raise refuse("absolute path")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise refuse("path contains '..'")
    if member.isdev():  # character/block device or FIFO
        raise refuse("device or special file")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise refuse(f"unsupported member type {member.type!r}")
    if member.issym() or member.islnk():
        target = member.linkname
        if target.startswith(("/", "\\")) or PureWindowsPath(target).drive:
            raise refuse(f"link to absolute path {target!r}")
        # A symlink's target is relative to its own folder, a hard link's to the archive root.
        base = os.path.dirname(name) if member.issym() else ""
        resolved = os.path.normpath(os.path.join(base, target))
        if resolved == ".." or resolved.startswith("../"):
            raise refuse(f"link to {target!r} points outside the archive")


def _top_level_names(members: list[tarfile.TarInfo]) -> set[str]:
    return {parts[0] for m in members if (parts := PurePosixPath(m.name).parts)}


def _keep_only(members: list[tarfile.TarInfo], only: str, archive: Path) -> list[tarfile.TarInfo]:
    """The members inside the top-level folder `only`; CorruptDatasetError if there is none."""
    kept = [m for m in members if PurePosixPath(m.name).parts[:1] == (only,)]
    as_entry = [m for m in kept if PurePosixPath(m.name).parts == (only,)]
    if not kept or any(not m.isdir() for m in as_entry):
        found = sorted(_top_level_names(members))
        holds = ", ".join(found[:10]) + (", ..." if len(found) > 10 else "") or "nothing"
        what = "has no folder" if not as_entry else "holds a file, not a folder, named"
        raise CorruptDatasetError(
            f"{archive} {what} {only}/ (its top level holds: {holds}); nothing was "
            "extracted. It is not the archive expected here: delete it and download it again."
        )
    return kept


def extract_tar(archive: Path, dest: Path, only: str | None = None) -> Path:
    """Extract the tar archive `archive` (any compression) into the folder `dest`; return `dest`.

    With `only`, just the top-level folder of that name is extracted and moved into
    `dest`; an archive without it fails before anything is written, and whatever else
    the archive holds never reaches `dest`.

    Every member is checked first; members with absolute paths, '..' components, links
    pointing outside, or device files make the whole extraction fail before anything is
    written. Python's `filter="data"` is applied as well where the running Python has it.
    Extraction goes to a hidden staging folder inside `dest` and each top-level entry is
    then renamed into place, so an interrupted run never leaves a half-extracted folder.

    Raises:
        UnsafeArchiveError: a member is unsafe (nothing is extracted).
        CorruptDatasetError: the archive cannot be read (truncated, not a tar file), or
            it lacks the folder `only`.
        FileExistsError: a top-level entry of the archive already exists in `dest`.
    """
    archive, dest = Path(archive), Path(dest)
    corrupt_hint = "it is truncated or not a tar archive; delete it and download it again."
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise CorruptDatasetError(f"{archive}: cannot open ({e}); {corrupt_hint}") from e
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise CorruptDatasetError(f"{archive}: cannot read ({e}); {corrupt_hint}") from e
        for member in members:
            _check_member(member, archive)
        if only is not None:
            members = _keep_only(members, only, archive)
        tops = _top_level_names(members)
        for top in sorted(tops):
            if os.path.lexists(dest / top):
                raise FileExistsError(
                    f"cannot extract {archive}: {dest / top} already exists; "
                    "delete it first if it is incomplete."
                )

        dest.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            try:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, members=members, filter="data")
                else:  # Python < 3.11.4: _check_member above is the only guard
                    tar.extractall(staging, members=members)
            except _FILTER_ERROR as e:
                raise UnsafeArchiveError(f"{archive}: refused by tarfile's data filter: {e}") from e
            except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise CorruptDatasetError(
                    f"{archive}: extraction failed ({e}); {corrupt_hint}"
                ) from e
            for top in sorted(tops):
                if os.path.lexists(dest / top):  # another process got there first
                    raise FileExistsError(f"cannot extract {archive}: {dest / top} now exists")
                os.rename(staging / top, dest / top)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest
