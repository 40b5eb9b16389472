"""One page API over the two browsers the console is tested in, both from Debian's packages (no browser download).

Chromium is driven by Playwright for Python; Firefox (firefox-esr) by puppeteer-core over WebDriver BiDi, through
tests/clients/js/browser-bridge.mjs (Playwright drives only its own patched Firefox). A test written against `Page`
runs unchanged in both. Waits are predicates evaluated in the page until they hold or the timeout passes.
"""

from __future__ import annotations

import base64
import json
import select
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

JS = Path(__file__).parent / "js"
TIMEOUT_MS = 10_000


class Page:
    """A page in a fresh browser context: navigation, input, evaluation, waits, downloads, console errors."""

    name: str

    def goto(self, url: str) -> tuple[int, dict[str, str], str]:
        """Opens `url`: the answer's status, its headers (lower-case names) and the page's URL afterwards."""
        raise NotImplementedError

    def click(self, selector: str) -> None:
        raise NotImplementedError

    def focus(self, selector: str) -> None:
        raise NotImplementedError

    def press(self, key: str) -> None:
        raise NotImplementedError

    def fill(self, selector: str, value: str) -> None:
        raise NotImplementedError

    def select(self, selector: str, value: str) -> None:
        raise NotImplementedError

    def upload(self, selector: str, file: Path) -> None:
        raise NotImplementedError

    def evaluate(self, source: str, arg: Any = None) -> Any:
        """Calls the JavaScript function `source` with `arg` in the page; answers its (awaited) JSON value."""
        raise NotImplementedError

    def _wait(self, source: str, arg: Any, timeout_ms: int) -> None:
        raise NotImplementedError

    def download(self, selector: str) -> bytes:
        """Clicks `selector` and answers the bytes of the file the browser saved."""
        raise NotImplementedError

    def set_viewport(self, width: int, height: int) -> None:
        raise NotImplementedError

    def screenshot(self, file: Path, full_page: bool, clip: dict[str, int] | None) -> None:
        raise NotImplementedError

    def console_errors(self) -> list[tuple[str, str]]:
        """Every console error and page error so far: (text, the URL it names)."""
        raise NotImplementedError

    # ---- built on the above, the same in every browser ----

    def text(self, selector: str) -> str:
        """The rendered text of the first element `selector` matches, once there is one."""
        self.wait_for("(s) => document.querySelector(s) !== null", selector, what=f"{selector} present")
        return self.evaluate("(s) => document.querySelector(s).innerText", selector)

    def check(self, selector: str) -> None:
        if not self.evaluate("(s) => document.querySelector(s).checked", selector):
            self.click(selector)

    def wait_for(self, source: str, arg: Any = None, timeout_ms: int = TIMEOUT_MS, what: str = "") -> None:
        """Waits until the predicate `source(arg)` holds in the page; fails the test with `what` if it does not."""
        try:
            self._wait(source, arg, timeout_ms)
        except Exception as error:  # noqa: BLE001 (each driver raises its own timeout)
            raise AssertionError(f"{self.name}: {what or source} did not happen within {timeout_ms} ms: {error}")

    def _wait_on(self, selector: str, test: str, arg: Any, prop: str, want: str, timeout_ms: int) -> None:
        """Waits until `test(element, arg)` holds for the first match of `selector`; on a timeout, fails saying
        what `prop` (innerText or an attribute's name) of it was instead of `want`."""
        source = f"([s, a]) => {{ const e = document.querySelector(s); return e !== null && ({test})(e, a); }}"
        try:
            self._wait(source, [selector, arg], timeout_ms)
        except Exception:  # noqa: BLE001 (each driver raises its own timeout)
            now = self.evaluate("([s, p]) => { const e = document.querySelector(s); return e === null ? '(absent)' : "
                                "String(p === 'innerText' ? e.innerText : e.getAttribute(p)); }", [selector, prop])
            raise AssertionError(f"{self.name}: {selector} {prop} never {want}; it is {now!r}") from None

    def wait_count(self, selector: str, count: int) -> None:
        self.wait_for("([s, n]) => document.querySelectorAll(s).length === n", [selector, count],
                      what=f"{count} × {selector}")

    def wait_contains(self, selector: str, text: str, timeout_ms: int = TIMEOUT_MS) -> None:
        self._wait_on(selector, "(e, t) => e.innerText.includes(t)", text, "innerText", f"contained {text!r}",
                      timeout_ms)

    def wait_text(self, selector: str, text: str) -> None:
        self._wait_on(selector, "(e, t) => e.innerText.trim() === t", text, "innerText", f"was {text!r}", TIMEOUT_MS)

    def wait_attribute(self, selector: str, name: str, value: str) -> None:
        self._wait_on(selector, "(e, [n, v]) => e.getAttribute(n) === v", [name, value], name, f"was {value!r}",
                      TIMEOUT_MS)

    def wait_visible(self, selector: str) -> None:
        self.wait_for("(s) => { const e = document.querySelector(s); return e !== null && "
                      "e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'; }",
                      selector, what=f"{selector} visible")

    def wait_focused(self, selector: str) -> None:
        self.wait_for("(s) => document.activeElement === document.querySelector(s)", selector,
                      what=f"{selector} focused")

    def wait_value(self, selector: str, value: str) -> None:
        self.wait_for("([s, v]) => document.querySelector(s)?.value === v", [selector, value],
                      what=f"{selector} = {value!r}")

    def wait_enabled(self, selector: str) -> None:
        self.wait_for("(s) => { const e = document.querySelector(s); return e !== null && !e.disabled; }",
                      selector, what=f"{selector} enabled")


class ChromiumPage(Page):
    """Debian's chromium, through Playwright for Python."""

    name = "chromium"

    def __init__(self, browser: Any, width: int, height: int) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: list[tuple[str, str]] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append((f"page error: {error}", "")))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append((message.text, message.location.get("url", "")))

    def goto(self, url: str) -> tuple[int, dict[str, str], str]:
        response = self.page.goto(url)
        assert response is not None
        return response.status, response.headers, self.page.url

    def click(self, selector: str) -> None:
        self.page.click(selector)

    def focus(self, selector: str) -> None:
        self.page.focus(selector)

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)

    def fill(self, selector: str, value: str) -> None:
        self.page.fill(selector, value)

    def select(self, selector: str, value: str) -> None:
        self.page.select_option(selector, value)

    def upload(self, selector: str, file: Path) -> None:
        self.page.set_input_files(selector, str(file))

    def evaluate(self, source: str, arg: Any = None) -> Any:
        return self.page.evaluate(source, arg)

    def _wait(self, source: str, arg: Any, timeout_ms: int) -> None:
        self.page.wait_for_function(source, arg=arg, timeout=timeout_ms)

    def download(self, selector: str) -> bytes:
        with self.page.expect_download() as download:
            self.page.click(selector)
        return Path(download.value.path()).read_bytes()

    def set_viewport(self, width: int, height: int) -> None:
        self.page.set_viewport_size({"width": width, "height": height})

    def screenshot(self, file: Path, full_page: bool, clip: dict[str, int] | None) -> None:
        self.page.screenshot(path=str(file), full_page=full_page, clip=clip)

    def console_errors(self) -> list[tuple[str, str]]:
        return list(self.errors)

    def close(self) -> None:
        self.context.close()


class FirefoxPage(Page):
    """Debian's firefox-esr, through puppeteer-core (tests/clients/js/browser-bridge.mjs) over WebDriver BiDi."""

    name = "firefox"

    def __init__(self, bridge: subprocess.Popen[str], downloads: Path, width: int, height: int) -> None:
        self.bridge, self.downloads = bridge, downloads
        self._call("newPage", width, height)

    def _call(self, op: str, *args: Any, timeout_s: float = 60) -> Any:
        assert self.bridge.stdin is not None and self.bridge.stdout is not None
        self.bridge.stdin.write(json.dumps({"op": op, "args": list(args)}) + "\n")
        self.bridge.stdin.flush()
        ready, _, _ = select.select([self.bridge.stdout], [], [], timeout_s)
        if not ready:
            raise AssertionError(f"firefox: {op} answered nothing within {timeout_s} s")
        line = self.bridge.stdout.readline()
        if not line:
            raise AssertionError(f"firefox: the bridge exited during {op} (exit code {self.bridge.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["value"]

    def goto(self, url: str) -> tuple[int, dict[str, str], str]:
        answer = self._call("goto", url)
        return answer["status"], answer["headers"], answer["url"]

    def click(self, selector: str) -> None:
        self._call("click", selector)

    def focus(self, selector: str) -> None:
        self._call("focus", selector)

    def press(self, key: str) -> None:
        self._call("press", key)

    def fill(self, selector: str, value: str) -> None:
        self._call("fill", selector, value)

    def select(self, selector: str, value: str) -> None:
        self._call("select", selector, value)

    def upload(self, selector: str, file: Path) -> None:
        self._call("upload", selector, str(file))

    def evaluate(self, source: str, arg: Any = None) -> Any:
        return self._call("evaluate", source, arg)

    def _wait(self, source: str, arg: Any, timeout_ms: int) -> None:
        self._call("waitFor", source, arg, timeout_ms, timeout_s=timeout_ms / 1000 + 30)

    def download(self, selector: str) -> bytes:
        # As Playwright does for Chromium: the button may appear only once the page re-renders its list.
        self.wait_visible(selector)
        return base64.b64decode(self._call("download", selector, 30_000))

    def set_viewport(self, width: int, height: int) -> None:
        self._call("setViewport", width, height)

    def screenshot(self, file: Path, full_page: bool, clip: dict[str, int] | None) -> None:
        self._call("screenshot", str(file), full_page, clip)

    def console_errors(self) -> list[tuple[str, str]]:
        return [(error["text"], error["url"]) for error in self._call("errors")]

    def close(self) -> None:
        pass  # the next page closes this one's context; the bridge closes the browser


class Browser:
    """A running browser that opens pages in fresh contexts."""

    def __init__(self, name: str, driver: Any, downloads: Path | None = None) -> None:
        self.name, self.driver, self.downloads = name, driver, downloads

    def new_page(self, width: int = 1280, height: int = 900) -> Page:
        if self.name == "chromium":
            return ChromiumPage(self.driver, width, height)
        assert self.downloads is not None
        return FirefoxPage(self.driver, self.downloads, width, height)


@contextmanager
def launch(name: str) -> Iterator[Browser]:
    """Starts Debian's `chromium` or `firefox-esr` headless; fails the test if the package is missing."""
    if name == "chromium":
        chromium = shutil.which("chromium")
        if chromium is None:
            pytest.fail("Debian's chromium is needed: run scripts/test, which installs it")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                yield Browser(name, instance)
            finally:
                instance.close()
        return
    firefox = shutil.which("firefox-esr")
    if firefox is None:
        pytest.fail("Debian's firefox-esr is needed: run scripts/test, which installs it")
    if not (JS / "node_modules" / "puppeteer-core").is_dir():
        pytest.fail("puppeteer-core is needed in tests/clients/js/node_modules: run scripts/test, which installs it")
    with tempfile.TemporaryDirectory(prefix="kmsim-firefox-") as downloads:
        bridge = subprocess.Popen(["node", str(JS / "browser-bridge.mjs"), firefox, downloads], cwd=JS,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            yield Browser(name, bridge, Path(downloads))
        finally:
            assert bridge.stdin is not None
            bridge.stdin.close()
            try:
                bridge.wait(timeout=30)
            except subprocess.TimeoutExpired:
                bridge.kill()
                bridge.wait()
