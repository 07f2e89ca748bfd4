"""Copy the notebook series out of the installed package into a learner's own folder.
Sits beside the command line (`handlerkit notebooks DIR`); it never overwrites a learner's file.
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .samples import shipped

SERIES_DIR = shipped("notebook_series", "notebooks")  # installed copy, or the checkout's notebooks/


@dataclass
class Copied:
    """What `copy_notebooks` did, each as paths relative to `dest`.

    Attributes:
        dest: the folder the series was copied into.
        copied: notebooks that were not there and now are.
        kept: notebooks already there and different from the series: the learner's edits, left
            as they are.
        same: notebooks already there and identical to the series.
    """

    dest: Path
    copied: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    same: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{len(self.copied)} notebooks copied into {self.dest}"]
        lines += [f"  copied  {path}" for path in self.copied]
        lines += [f"  same    {path} (already there, unchanged)" for path in self.same]
        lines += [f"  skipped {path} (already there with your edits: kept)" for path in self.kept]
        if self.kept:
            lines.append("For a fresh copy of a skipped notebook, rename yours and run this again.")
        lines.append(f"Open them with: jupyter lab {self.dest}")
        return "\n".join(lines)


def series(source: Path = SERIES_DIR) -> list[Path]:
    """The notebooks of the series (solutions/ included), relative to `source`, in order.

    Hidden folders such as .ipynb_checkpoints are not part of the series.
    """
    found = sorted(path.relative_to(source) for path in source.rglob("*.ipynb"))
    return [path for path in found if not any(part.startswith(".") for part in path.parts)]


def copy_notebooks(dest: str | Path, source: Path = SERIES_DIR) -> Copied:
    """Copy every notebook of the series into `dest`, never overwriting a file already there.

    Args:
        dest: the learner's folder; created if missing (subfolders like solutions/ too).
        source: where the series is; the installed package's copy by default.

    Returns:
        What was copied, and what was already there (kept as it is, edited or not).
    """
    if not source.is_dir():
        raise FileNotFoundError(
            f"no notebook series at {source}: reinstall handlerkit from a wheel or the repository "
            "(pip install handlerkit[notebooks] ...), which ships the notebooks"
        )
    done = Copied(Path(dest))
    for path in series(source):
        target = done.dest / path
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / path, target)
            done.copied.append(path)
        elif filecmp.cmp(source / path, target, shallow=False):
            done.same.append(path)
        else:
            done.kept.append(path)
    return done
