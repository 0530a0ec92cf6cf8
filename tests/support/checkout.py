"""The repository's own files, in a git checkout or in a plain copy of one (no `.git`).

In a checkout: the files git tracks (a new file counts once it is added). In a copy without
`.git` (as `.ci/run` makes one): every file except those `.gitignore` names (the virtualenv,
caches, databases). The same tests run in both.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from pathlib import Path

from tests.support.payloads import REPO


def repo_files(root: Path = REPO) -> list[Path]:
    """Paths relative to `root`, sorted; only files that exist."""
    names = _git_files(root)
    if names is None:
        names = _walk(root)
    return sorted(name for name in names if (root / name).is_file())


def _git_files(root: Path) -> list[Path] | None:
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    if Path(top).resolve() != root.resolve():
        return None  # a copy that happens to sit inside some other repository
    listed = subprocess.run(
        ["git", "ls-files", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    return [Path(os.fsdecode(name)) for name in listed if name]


def _walk(root: Path) -> list[Path]:
    ignored = _ignore_patterns(root)
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        here = Path(directory).relative_to(root)
        subdirs[:] = [
            name for name in subdirs if name != ".git" and not _ignored(here / name, ignored, True)
        ]
        found.extend(here / name for name in files if not _ignored(here / name, ignored, False))
    return found


def _ignore_patterns(root: Path) -> list[str]:
    gitignore = root / ".gitignore"
    if not gitignore.is_file():
        return []
    lines = (line.strip() for line in gitignore.read_text().splitlines())
    return [line for line in lines if line and not line.startswith(("#", "!"))]


def _ignored(path: Path, patterns: list[str], is_dir: bool) -> bool:
    for pattern in patterns:
        if pattern.endswith("/"):
            if not is_dir:
                continue
            pattern = pattern.rstrip("/")
        if pattern.startswith("/"):
            if fnmatch.fnmatch(path.as_posix(), pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatch(path.name, pattern):
            return True
    return False
