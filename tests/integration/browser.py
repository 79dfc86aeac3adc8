"""A person in Doccano's web UI, driven by Selenium in headless Debian chromium (chromium-driver).

What the helper does is what a person's mouse does: log in on the login page, open the
annotation page of an example, select text and pick a label from the menu that opens, right-click
an entity's label to delete it, press Enter to mark the example done. The text selection is set
with the DOM Range API (what dragging the mouse produces) and the annotator's click is sent to
its container, because WebDriver's pointer actions cannot address characters inside SVG text.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CLINICAL_NLP_ARTIFACTS", REPO / "artifacts")) / "browser"

_SELECT_AND_CLICK = """
const [start, end] = arguments;
for (const t of document.querySelectorAll('text')) {
  const line = t.annotatorElement;
  if (!line || !t.firstChild || line.startOffset > start || end > line.endOffset) continue;
  const range = document.createRange();
  range.setStart(t.firstChild, start - line.startOffset);
  range.setEnd(t.firstChild, end - line.startOffset);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
  const box = range.getBoundingClientRect();
  const target = t.closest('[id^=container]');
  target.dispatchEvent(new MouseEvent('click', {bubbles: true, clientX: box.left, clientY: box.bottom}));
  return true;
}
return false;
"""


def binaries() -> tuple[str, str]:
    """Paths of chromium and chromedriver; skip (fail under CI) when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        if os.environ.get("CI"):
            pytest.fail("CI: chromium and chromium-driver are not installed (make chromium)", pytrace=False)
        pytest.skip("chromium / chromium-driver not installed (make chromium)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("selenium is not installed (pip install -e '.[dev]')", pytrace=False)
    return browser, driver


class DoccanoBrowser:
    """One person's browser session on the Doccano web UI."""

    def __init__(self, url: str, shots: str):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        browser, driver = binaries()
        opts = webdriver.ChromeOptions()
        opts.binary_location = browser
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
            opts.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(driver), options=opts)
        self.driver.implicitly_wait(0)
        self.url = url.rstrip("/")
        self.shots = ARTIFACTS / shots
        self.shots.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def close(self) -> None:
        self.driver.quit()

    def wait(self, condition, timeout: float = 30.0, what: str = "the page"):
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout).until(condition)
        except Exception:
            self.screenshot("timeout")
            raise AssertionError(f"browser: {what} did not appear within {timeout:.0f}s") from None

    def screenshot(self, what: str) -> Path:
        self.n += 1
        path = self.shots / f"{self.n:02d}-{what}.png"
        self.driver.save_screenshot(str(path))
        return path

    def login(self, username: str, password: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        self.driver.get(f"{self.url}/auth")
        user = self.wait(lambda d: d.find_element(By.NAME, "username"), what="the login form")
        user.send_keys(username)
        pw = self.driver.find_element(By.NAME, "password")
        pw.send_keys(password)
        self.screenshot("login")
        pw.send_keys(Keys.ENTER)
        self.wait(lambda d: "/auth" not in d.current_url, what="the page after login")

    def open_example(self, project_id: int, page: int = 1) -> None:
        """The annotation page of the project's ``page``-th example, with its text drawn: the project's
        home, its "Start Annotation" button, then the page (what the pagination arrows do)."""
        from selenium.webdriver.common.by import By

        self.driver.get(f"{self.url}/projects/{project_id}")
        start = self.wait(
            lambda d: next(
                (e for e in d.find_elements(By.CSS_SELECTOR, "a, button") if "Start Annotation" in e.text), None
            ),
            what="the Start Annotation button",
        )
        time.sleep(1.0)  # the page's handlers are attached once the app has loaded the project
        start.click()
        self.wait(lambda d: "sequence-labeling" in d.current_url, what="the annotation page")
        if page != 1:
            self.driver.execute_script(
                "window.$nuxt.$router.push({query: {page: String(arguments[0]), q: '', isChecked: ''}})", page
            )
        self.wait(
            lambda d: d.execute_script("return [...document.querySelectorAll('text')].some(t => t.annotatorElement)"),
            what="the example's text",
        )
        time.sleep(1.0)  # the entities are drawn after the text

    def entity_labels(self) -> list[str]:
        """The label names drawn on entities (one per span), in document order."""
        return self.driver.execute_script(
            "return [...document.querySelectorAll('g[style*=\"cursor: pointer\"] > text')].map(t => t.textContent)"
        )

    def delete_entity(self, label: str) -> None:
        """Right-click the (only) entity drawn with ``label``: Doccano deletes it."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        before = self.entity_labels().count(label)
        assert before == 1, f"browser: expected one {label!r} entity on the page, found {before}"
        chip = self.driver.find_element(
            By.XPATH, f"//*[name()='g'][contains(@style,'cursor')]/*[name()='text'][.='{label}']"
        )
        ActionChains(self.driver).context_click(chip).perform()
        self.wait(lambda d: self.entity_labels().count(label) == 0, what=f"the deletion of {label!r}")

    def add_entity(self, start: int, end: int, label: str) -> None:
        """Select ``[start, end)`` of the text and choose ``label`` in the menu that opens."""
        from selenium.webdriver.common.by import By

        before = len(self.entity_labels())
        assert self.driver.execute_script(_SELECT_AND_CLICK, start, end), f"no text line holds [{start}, {end})"
        item = self.wait(
            lambda d: next(
                (e for e in d.find_elements(By.CSS_SELECTOR, ".v-menu__content .v-list-item__title")
                 if e.text == label and e.is_displayed()),
                None,
            ),
            what="the label menu",
        )  # fmt: skip
        self.screenshot(f"menu-{label}")
        item.click()
        self.wait(lambda d: len(self.entity_labels()) == before + 1, what=f"the new {label!r} entity")

    def mark_done(self) -> None:
        """Press Enter, the annotation page's shortcut for its done (check) button."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        self.driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ENTER)
        time.sleep(1.0)
