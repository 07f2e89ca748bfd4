"""Which models a server serves, in which versions, and each model's default version: the rule
TorchServe's frontend applies to `/predictions/{model}[/{version}]`.

TorchServe keeps every version of a model side by side. The first version registered is the
default (TorchServe 0.12 ignores a config's `defaultVersion` at start; the management API's
set-default changes it), and a request that names no version goes to the default.
"""

from __future__ import annotations

from collections.abc import Iterable

Key = tuple[str, str]  # (model name, version): one loaded model


class Versions:
    """The versions of each served model, in the order they were registered.

    Example:
        served = Versions([("mnist", "1.0"), ("mnist", "2.0")])
        served.find("mnist", None), served.find("mnist", "2.0"), served.find("mnist", "3.0")
        # ("mnist", "1.0"), ("mnist", "2.0"), None
    """

    def __init__(self, keys: Iterable[Key] = ()) -> None:
        self._versions: dict[str, list[str]] = {}
        self._default: dict[str, str] = {}
        for name, version in keys:
            self.add(name, version)

    def add(self, name: str, version: str) -> None:
        """Register `version` of `name`; the first version of a name is its default."""
        known = self._versions.setdefault(name, [])
        if version in known:
            raise ValueError(
                f"model {name!r} version {version} is given twice: give each .mar its own "
                "version (torch-model-archiver --version)"
            )
        known.append(version)
        self._default.setdefault(name, version)

    def __contains__(self, name: object) -> bool:
        return name in self._versions

    def names(self) -> list[str]:
        return list(self._versions)

    def of(self, name: str) -> list[str]:
        """The versions of `name`, in the order they were registered."""
        return list(self._versions[name])

    def default(self, name: str) -> str:
        return self._default[name]

    def find(self, name: str, version: str | None) -> Key | None:
        """The model a request for `name` goes to: `version`, or the default when None; None when
        `name` has no such version (TorchServe: 404 ModelVersionNotFoundException)."""
        if version is None:
            return name, self._default[name]
        return (name, version) if version in self._versions[name] else None

    def keys(self) -> list[Key]:
        return [
            (name, version) for name, versions in self._versions.items() for version in versions
        ]

    def __repr__(self) -> str:
        return f"Versions({self.keys()!r})"
