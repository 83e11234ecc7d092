"""Start the dashboard as a real server on 127.0.0.1 and drive it with Debian's chromium."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard(env: dict[str, str] | None = None, timeout: float = 240.0):
    """Yield the base URL of a freshly started dashboard; stop it afterwards."""
    port = free_port()
    cmd = [sys.executable, str(ROOT / "app" / "serve.py"),  # as msd dashboard starts it
           "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    log = open(ROOT / "test-artifacts" / f"streamlit-{port}.log", "w") if (ROOT / "test-artifacts").is_dir() \
        else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, stdout=log,
                            stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited with code {proc.returncode}")
            if time.time() > deadline:
                raise TimeoutError("the dashboard did not answer /_stcore/health in time")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 2400):
    """A Playwright page in Debian's chromium (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` "
                           f"(the README's test command does this)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(90_000)
            yield page
        finally:
            browser.close()


def wait_until_idle(page) -> None:
    """Wait for the app to finish running its script (the status widget disappears)."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=120_000)
    page.wait_for_timeout(300)


def hover_first_scatter_point(page):
    """Move the pointer onto a point of the saliency scatter (the page's first Vega chart); returns
    the hover-thumbnail locator. Vega draws on a canvas and keeps its points to itself, so the
    pointer sweeps the plot (in the page, with synthetic moves) until Vega shows a tooltip."""
    at = page.evaluate("""() => {
        const canvas = document.querySelector('.vega-embed canvas');
        const r = canvas.getBoundingClientRect();
        const shown = () => document.querySelector('#vg-tooltip-element.visible');
        for (let y = r.top + 4; y < r.bottom - 4; y += 3) {
            for (let x = r.left + 4; x < r.right - 4; x += 3) {
                for (const kind of ['pointermove', 'mousemove']) {
                    canvas.dispatchEvent(new PointerEvent(kind, {clientX: x, clientY: y, bubbles: true}));
                }
                if (shown()) return {x, y};
            }
        }
        return null; }""")
    assert at is not None, "no point of the scatter shows a tooltip"
    tip = page.locator(".msd-hover-image")
    page.mouse.move(at["x"], at["y"])
    tip.wait_for(state="visible", timeout=5_000)
    return tip
