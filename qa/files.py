"""Permissions of files and directories written atomically (temp name, then rename).

`tempfile.mkstemp` creates 0600 and `mkdtemp` 0700, and the rename carries that mode
onto the final name: a reader under another uid (a read-only replica, a backup job)
then loses the file. A replaced file keeps the mode it had; a new one gets what
`open()` would have given it under the process umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def _umask_at_import() -> int:
    """Set-and-restore is process-global, so done once here, not per write under threads."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_IMPORT_UMASK = _umask_at_import()


def umask() -> int:
    """The current umask: Linux reports it in /proc/self/status (read-only, thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _IMPORT_UMASK


def file_mode(target: Path) -> int:
    """The permission bits `target` should have after being replaced."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return 0o666 & ~umask()


def keep_file_mode(fd: int, target: Path) -> None:
    """Give the open temp file `fd` the mode `target` has (or would get when created) before the rename."""
    os.fchmod(fd, file_mode(target))


def set_dir_mode(path: Path) -> None:
    """A temp directory about to be renamed into place gets `mkdir`'s mode, not mkdtemp's 0700."""
    os.chmod(path, 0o777 & ~umask())
