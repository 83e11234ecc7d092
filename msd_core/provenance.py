"""What a run records about where it ran: package versions, git revision, host."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "safetensors", "numpy", "captum", "streamlit")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    from . import __version__

    out["msd_core"] = __version__
    return out


def git_revision(cwd: Path | None = None, ignore: tuple[str, ...] = ()) -> str | None:
    """The repository's HEAD (with ``-dirty`` if there are local changes to tracked files outside
    the repository-relative paths ``ignore``), or None outside git."""
    cwd = cwd or Path(__file__).resolve().parent
    status = ["git", "status", "--porcelain", "--untracked-files=no"]
    if ignore:
        status += ["--", ":(top)", *(f":(top,exclude){p}" for p in ignore)]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(status, cwd=cwd, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (rev + ("-dirty" if dirty else "")) if rev else None
