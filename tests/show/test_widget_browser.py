"""DigitPlayground in a real browser: headless JupyterLab + Chromium, driven by Playwright.

Starts JupyterLab from this environment on 127.0.0.1 (free port, random token, every Jupyter /
IPython / XDG folder inside the test's tmp folder), opens tests/fixtures/playground.ipynb, runs
it, uploads an MNIST digit through the widget's upload button, then draws a "1" on the pad with
the mouse; each time the widget must show a prediction.

Needs Chromium at /usr/bin/chromium (Debian: apt-get install chromium) — Playwright never
downloads a browser here; the test is skipped when neither that nor $HANDLERKIT_CHROMIUM exists.

    .venv/bin/python -m pytest -m browser                               # run it
    HANDLERKIT_SCREENSHOTS=docs .venv/bin/python -m pytest -m browser   # + refresh docs/*.png

On failure, a screenshot of the page and the JupyterLab log are saved in the test's tmp folder
and their paths printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE.parent / "fixtures" / "playground.ipynb"
CHROMIUM = os.environ.get("HANDLERKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
]
WIDGET_EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "ipycanvas")
UPLOAD_DIGIT = 1537  # an MNIST "3" (samples are sorted by class, 500 each)
SERVER_START_S = 60
KERNEL_READY_S = 60  # kernel start, `import torch`, loading the weights
ANSWER_S = 30  # one prediction: bytes to the kernel, handler, status back to the page
DRAW_DIGIT = 1

import playwright.sync_api as playwright_api  # noqa: E402 - part of the test extra

expect = playwright_api.expect


# ---- JupyterLab, hermetic ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hermetic_env(root: Path) -> dict[str, str]:
    """This environment minus every per-user Jupyter/IPython/XDG location, all moved under root.

    The kernel still runs sys.executable (the kernelspec says "python", which jupyter_client maps
    to the server's interpreter), so it sees this venv's packages; the lab extensions of
    ipywidgets and ipycanvas come from <sys.prefix>/share/jupyter, which Jupyter always searches.
    """
    dropped = ("JUPYTER", "JPY_", "IPYTHON", "XDG_", "MPLBACKEND", "MPLCONFIGDIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    dirs = {
        "HOME": "home",
        "XDG_CONFIG_HOME": "home/.config",
        "XDG_DATA_HOME": "home/.local/share",
        "XDG_CACHE_HOME": "home/.cache",
        "XDG_STATE_HOME": "home/.local/state",
        "XDG_RUNTIME_DIR": "xdg-runtime",
        "JUPYTER_CONFIG_DIR": "jupyter/config",
        "JUPYTER_DATA_DIR": "jupyter/data",
        "JUPYTER_RUNTIME_DIR": "jupyter/runtime",
        "JUPYTERLAB_SETTINGS_DIR": "jupyter/config/lab/user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "jupyter/config/lab/workspaces",
        "IPYTHONDIR": "ipython",
    }
    for name, sub in dirs.items():
        path = root / sub
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(path)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _quiet_lab_settings(settings_dir: Path) -> None:
    """No news, no update checks, no toasts: they would cover the widget in the screenshots."""
    folder = settings_dir / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
    )


def _check_widget_extensions(env: dict[str, str]) -> None:
    """The widget lab extensions must be found through sys.prefix, not the (empty) user dir."""
    from jupyter_core.paths import jupyter_path

    with pytest.MonkeyPatch.context() as mp:
        for name in ("JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "HOME", "XDG_DATA_HOME"):
            mp.setenv(name, env[name])
        for name in ("JUPYTER_PATH", "JUPYTER_PREFER_ENV_PATH", "JUPYTER_NO_CONFIG"):
            mp.delenv(name, raising=False)
        roots = [Path(p) for p in jupyter_path("labextensions")]
    prefix = Path(sys.prefix).resolve()
    in_prefix = [r for r in roots if r.resolve().is_relative_to(prefix)]
    assert in_prefix, f"Jupyter does not search {prefix}/share/jupyter: {roots}"
    for ext in WIDGET_EXTENSIONS:
        assert any((r / ext / "package.json").is_file() for r in in_prefix), (
            f"lab extension {ext} is not in {in_prefix} (pip install ipywidgets ipycanvas)"
        )


def _kill_leftovers(marker: str) -> None:
    """Kernels run in their own session; stop any still alive whose command line names our tmp."""
    import psutil  # ipykernel's dependency

    mine = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in proc.info["cmdline"] or ()):
                mine.append(proc)
    for proc in mine:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(mine, timeout=5)


class Lab:
    """A running JupyterLab: url, token, log path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.work = root / "work"
        self.work.mkdir()
        self.env = _hermetic_env(root)
        self.log_path = root / "jupyterlab.log"
        self.token = secrets.token_hex(24)
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> None:
        _check_widget_extensions(self.env)
        _quiet_lab_settings(Path(self.env["JUPYTERLAB_SETTINGS_DIR"]))
        shutil.copy(NOTEBOOK, self.work / NOTEBOOK.name)  # lab autosaves; keep the repo's clean
        cmd = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={_free_port()}",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.work}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.shutdown_no_activity_timeout=600",  # a safety net if all else fails
            "--MappingKernelManager.cull_idle_timeout=600",
            "--LabApp.extension_manager=readonly",  # no PyPI lookups from the server
            "--ServerApp.terminals_enabled=False",
        ]
        if os.geteuid() == 0:  # containers, CI
            cmd.append("--allow-root")
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.work,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        runtime = Path(self.env["JUPYTER_RUNTIME_DIR"])
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with {self.proc.returncode}; log: "
                    f"{self.log_path}\n{self.log()[-3000:]}"
                )
            info = runtime / f"jpserver-{self.proc.pid}.json"
            if info.is_file():
                with contextlib.suppress(ValueError, OSError):
                    port = json.loads(info.read_text())["port"]
                    self.url = f"http://127.0.0.1:{port}"
                    with urllib.request.urlopen(
                        f"{self.url}/api/status?token={self.token}", timeout=5
                    ):
                        return
            time.sleep(0.2)
        raise TimeoutError(f"JupyterLab did not answer in {SERVER_START_S}s; log: {self.log_path}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM the server's process group (it shuts its kernels down), then make sure."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):  # anything left in its group
                os.killpg(self.proc.pid, signal.SIGKILL)
        _kill_leftovers(str(self.root))


# ---- failure reports ---------------------------------------------------------------------------
class Reporter:
    """On a failure inside `watch`, save a page screenshot + the lab log; print their paths."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.page = None

    @contextlib.contextmanager
    def watch(self, what: str):
        try:
            yield
        except BaseException:
            self.save(what)
            raise

    def save(self, what: str) -> None:
        name = re.sub(r"\W+", "-", what)
        print(f"\n[browser test] {what} failed; artifacts:")
        if self.page is not None:
            shot = self.lab.root / f"failure-{name}.png"
            try:
                self.page.screenshot(path=str(shot), full_page=True, timeout=10_000)
                print(f"  screenshot: {shot}")
            except Exception as error:  # noqa: BLE001 - best effort, the real failure matters
                print(f"  (no screenshot: {error!r})")
        log = self.lab.root / f"failure-{name}-jupyterlab.log"
        log.write_text(self.lab.log())
        print(f"  JupyterLab log: {log}")


# ---- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):  # CI installs it (.ci/run): never skip there
            pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run should have installed it")
        pytest.skip(
            f"no Chromium at {CHROMIUM} (apt-get install chromium, or set "
            "HANDLERKIT_CHROMIUM); Playwright must not download one"
        )
    root = tmp_path_factory.mktemp("lab")
    lab = Lab(root)
    try:
        with Reporter(lab).watch("starting JupyterLab"):
            lab.start()
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def browser(lab):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, env=lab.env, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def playground(lab, browser):
    """The notebook opened and run: (page, widget locator, reporter)."""
    reporter = Reporter(lab)
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.set_default_timeout(30_000)
    reporter.page = page
    try:
        with reporter.watch("rendering the widget"):
            widget = _open_and_run(page, lab)
        yield page, widget, reporter
    finally:
        page.close()


def _open_and_run(page, lab: Lab):
    page.goto(
        f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}&reset", wait_until="domcontentloaded"
    )
    page.wait_for_function(
        "() => window.jupyterapp?.shell?.currentWidget?.sessionContext !== undefined",
        timeout=SERVER_START_S * 1000,
    )
    config = page.evaluate(
        "() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
    )
    loaded = [e["name"] for e in config.get("federated_extensions", [])]
    disabled = config.get("disabledExtensions", [])
    missing = [e for e in WIDGET_EXTENSIONS if e not in loaded or e in disabled]
    assert not missing, (
        f"JupyterLab lacks the lab extension(s) {missing} (loaded: {loaded}, "
        f"disabled: {disabled}); widgets would show as plain text"
    )
    status = page.evaluate(
        """async () => {
            const panel = window.jupyterapp.shell.currentWidget;
            await panel.context.ready;
            await panel.sessionContext.ready;
            return panel.sessionContext.session?.kernel?.status ?? 'no kernel';
        }"""
    )
    assert status != "no kernel", "the notebook's kernel did not start"
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

    cell = page.locator(".jp-CodeCell").first
    widget = cell.locator(".jp-OutputArea-output:has(.handlerkit-status)").first
    error = cell.locator("[data-mime-type='application/vnd.jupyter.stderr']")
    deadline, finished_at = time.monotonic() + KERNEL_READY_S, None
    while not widget.is_visible():  # not run yet, running, or it showed something else
        now = time.monotonic()
        prompt = cell.locator(".jp-InputArea-prompt").inner_text().strip()
        if finished_at is None and re.fullmatch(r"\[\d+\]:", prompt):
            finished_at = now  # the kernel is done; give the browser a moment to draw
        shown = cell.locator(".jp-OutputArea").inner_text()
        if (
            error.count()
            or "DigitPlayground(" in shown
            or now > deadline
            or (finished_at is not None and now - finished_at > 10)
        ):
            raise AssertionError(
                f"the DigitPlayground widget did not render (cell prompt "
                f"{prompt!r}); the cell shows:\n{shown[-3000:] or '(nothing)'}"
            )
        time.sleep(0.25)
    expect(widget.locator(".widget-upload")).to_be_visible(timeout=10_000)
    expect(widget.locator("canvas").first).to_be_visible(timeout=10_000)
    return widget


@pytest.fixture(scope="module")
def upload_png(tmp_path_factory) -> tuple[Path, int]:
    """An MNIST digit as a person would upload it: dark ink on white, 200x200 PNG."""
    from PIL import ImageOps

    from handlerkit import samples

    image = ImageOps.invert(samples.digit(UPLOAD_DIGIT)).resize((200, 200))
    path = tmp_path_factory.mktemp("upload") / f"digit-{samples.digit_label(UPLOAD_DIGIT)}.png"
    image.save(path)
    return path, samples.digit_label(UPLOAD_DIGIT)


def _screenshot_for_docs(widget, name: str) -> None:
    folder = os.environ.get("HANDLERKIT_SCREENSHOTS")
    if folder:
        path = Path(folder).resolve() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        widget.page.evaluate("() => document.activeElement?.blur()")  # no focus ring in the docs
        widget.screenshot(path=str(path), animations="disabled", timeout=10_000)
        print(f"\n[browser test] saved {path}")


def _figure_sources(widget) -> list[str]:
    return widget.locator("img").evaluate_all("imgs => imgs.map(i => i.src)")


def _wait_for_figure(widget, before: list[str]) -> None:
    """The new pictures (traced steps, probability bars) replaced the old ones, loaded and shown."""
    widget.page.wait_for_function(
        """([widget, before]) => {
            const imgs = [...widget.querySelectorAll('img')];
            return imgs.length === 2 && !imgs.some(i => before.includes(i.src))
                && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=[widget.element_handle(), before],
        timeout=ANSWER_S * 1000,
        polling=100,
    )


def _draw_stroke(page, widget, start, end, rest_ms: int = 0) -> None:
    """One pen stroke on the pad from `start` to `end` (fractions of its width and height),
    resting `rest_ms` before the pen lifts."""
    pad = widget.locator("canvas").first
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    assert box and box["width"] > 100, f"the drawing pad has no size: {box}"
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + start[0] * w, y0 + start[1] * h)
    page.mouse.down()
    page.mouse.move(x0 + end[0] * w, y0 + end[1] * h, steps=12)
    if rest_ms:
        page.wait_for_timeout(rest_ms)
    page.mouse.up()


def _expect_prediction(widget, source: str, digit) -> None:
    """The status names where the image came from ("upload", "drawing") and the digit."""
    status = widget.locator(".handlerkit-status")
    expect(status).to_contain_text(f"from your {source}", timeout=ANSWER_S * 1000)
    expect(status.locator(".handlerkit-prediction")).to_have_text(
        f"Prediction: {digit}", timeout=1_000
    )


# ---- tests -------------------------------------------------------------------------------------
def test_upload_shows_prediction(playground, upload_png):
    page, widget, reporter = playground
    path, label = upload_png
    with reporter.watch("upload"):
        before = _figure_sources(widget)
        # ipywidgets 8 keeps FileUpload's <input type=file> out of the page: catch the chooser.
        with page.expect_file_chooser(timeout=10_000) as chooser:
            widget.locator(".widget-upload").click()
        chooser.value.set_files(str(path))
        _expect_prediction(widget, "upload", label)
        _wait_for_figure(widget, before)
        _screenshot_for_docs(widget, "playground_upload.png")


def test_drawing_shows_prediction(playground):
    page, widget, reporter = playground
    with reporter.watch("drawing"):
        before = _figure_sources(widget)
        # The pad is blank (nothing drew on it yet). No "Clear" first: its pixels could reach the
        # kernel after our mouse-up and be classified instead of the stroke (a blank pad).
        # a "1": one vertical stroke down the middle, drawn the way a hand would
        _draw_stroke(page, widget, (0.52, 0.18), (0.48, 0.82))
        _expect_prediction(widget, "drawing", DRAW_DIGIT)
        _wait_for_figure(widget, before)
        _screenshot_for_docs(widget, "playground_drawing.png")


def test_drawing_with_a_pause_before_release_still_shows_prediction(playground):
    """The pen rests before lifting: every stroke's pixels reached the kernel before mouse-up."""
    page, widget, reporter = playground
    with reporter.watch("drawing-pause"):
        status = widget.locator(".handlerkit-status")
        widget.get_by_role("button", name="Clear").click()
        expect(status).to_contain_text("Pad cleared", timeout=ANSWER_S * 1000)
        page.wait_for_timeout(500)  # let the cleared pixels reach the kernel first
        _draw_stroke(page, widget, (0.5, 0.2), (0.5, 0.8), rest_ms=1500)
        _expect_prediction(widget, "drawing", DRAW_DIGIT)
