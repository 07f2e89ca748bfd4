"""Bad `.mar` files get one clear line naming the problem, on every path (`OfflineServer`, `run`,
`check`, `serve`: exit 2, no traceback), and leave no unpacked folder behind."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from handlerkit.errors import ModelLoadError
from handlerkit.offline import OfflineServer
from handlerkit.serving import model_folder as store

HANDLER = b"def handle(data, context):\n    return None if data is None else ['ok'] * len(data)\n"
MANIFEST = {"runtime": "python", "model": {"modelName": "m", "handler": "h.py"}}


def mar(path: Path, entries: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def good(path: Path) -> Path:
    return mar(path, {"MAR-INF/MANIFEST.json": json.dumps(MANIFEST).encode(), "h.py": HANDLER})


def bad_crc(path: Path) -> Path:
    data = bytearray(good(path).read_bytes())
    at = data.index(b"h.py") + 4  # the first bytes of the handler's compressed data
    data[at + 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


BAD = {
    "bad CRC": (bad_crc, "cannot be unpacked"),
    "invalid manifest": (
        lambda p: mar(p, {"MAR-INF/MANIFEST.json": b"{not json", "h.py": HANDLER}),
        "not valid JSON",
    ),
    "manifest not an object": (
        lambda p: mar(p, {"MAR-INF/MANIFEST.json": b"[1, 2]", "h.py": HANDLER}),
        'no "model" object',
    ),
    "symlink entry": (
        lambda p: mar(p, {"MAR-INF/MANIFEST.json": json.dumps(MANIFEST).encode()}, ("h.py",)),
        "symbolic link (h.py)",
    ),
    "missing handler file": (
        lambda p: mar(p, {"MAR-INF/MANIFEST.json": json.dumps(MANIFEST).encode()}),
        "names the handler h.py, which the archive does not hold",
    ),
}


@pytest.fixture
def temp(tmp_path, monkeypatch):
    """A temp folder of this test's own, to see that nothing is left in it."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize("case", BAD)
def test_offline_server_names_the_problem_and_leaves_no_folder(tmp_path, temp, case):
    make, words = BAD[case]
    source = make(tmp_path / "m.mar")
    with pytest.raises(ModelLoadError, match=words.replace("(", r"\(").replace(")", r"\)")):
        OfflineServer({"other": good(tmp_path / "other.mar"), "m": source}).start()
    assert list(temp.iterdir()) == []


def test_a_good_archive_still_answers(tmp_path, temp):
    with OfflineServer({"m": good(tmp_path / "m.mar")}) as server:
        assert server.predict("m", b"x").text == "ok"
    assert list(temp.iterdir()) == []


def test_the_archive_limits_are_checked_before_unpacking(tmp_path, temp, monkeypatch):
    monkeypatch.setattr(store, "MAX_ENTRIES", 1)
    with pytest.raises(ModelLoadError, match="2 entries, over 1"):
        OfflineServer({"m": good(tmp_path / "m.mar")}).start()
    monkeypatch.setattr(store, "MAX_ENTRIES", 10)
    monkeypatch.setattr(store, "MAX_UNPACKED_BYTES", 10)
    with pytest.raises(ModelLoadError, match="over handlerkit's 10"):
        OfflineServer({"m": good(tmp_path / "m.mar")}).start()
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("case", ["bad CRC", "missing handler file"])
@pytest.mark.parametrize("command", [["run"], ["check"], ["serve", "--engine", "litserve"]])
def test_the_commands_print_one_line_and_exit_2(tmp_path, case, command):
    make, words = BAD[case]
    source = make(tmp_path / "m.mar")
    temp = tmp_path / "temp"
    temp.mkdir()
    model = [f"m={source}"] if command[0] == "serve" else [str(source)]
    done = subprocess.run(
        [sys.executable, "-m", "handlerkit", command[0], *model, *command[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "TMPDIR": str(temp)},
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert words in done.stderr and done.stderr.startswith(f"handlerkit {command[0]}: ")
    assert list(temp.iterdir()) == []


def test_check_names_a_missing_handler_file_instead_of_blaming_imports(tmp_path):
    from handlerkit.serving.check import check

    unpacked = tmp_path / "unpacked"
    (unpacked / "MAR-INF").mkdir(parents=True)
    (unpacked / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(MANIFEST))
    problems, worker = check(unpacked, "m")
    assert worker is None and len(problems) == 1
    assert "names the handler h.py, which the archive does not hold" in problems[0].message
