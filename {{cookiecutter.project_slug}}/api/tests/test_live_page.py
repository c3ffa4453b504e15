"""The live page in a real headless browser: Debian's chromium, driven through
chromedriver, against the API served by uvicorn and a real worker.

Skipped when chromium or chromedriver is missing (`apt install chromium
chromium-driver`), unless REQUIRE_BROWSER=1 says that it must run.
"""

import asyncio
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from app.models import User
from tests.conftest import PASSWORD, listening

pytestmark = pytest.mark.usefixtures("worker")

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
# Where the screenshot goes; the template's own tests point this elsewhere.
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))
# No first-run work, no background connections: the test network reaches nothing public.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=900,1100",
]


@pytest.fixture(scope="module")
def browser() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return
    reason = (
        f"no browser to drive: {', '.join(missing)} missing (apt install chromium chromium-driver)"
    )
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:
    async with listening(app) as address:
        yield address


def start_chromium(profile: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def card_text(card: WebElement, part: str) -> str:
    return str(card.find_element(By.CLASS_NAME, part).text)


def watch_until_done(
    driver: webdriver.Chrome, card: WebElement, progress_screenshot: Path | None = None
) -> list[str]:
    """Every status text the card showed, read as often as the browser allows;
    the page is saved to `progress_screenshot` when it first shows progress."""
    shown: list[str] = []

    def done(_: webdriver.Chrome) -> bool:
        nonlocal progress_screenshot
        status = card_text(card, "status")
        if not shown or shown[-1] != status:
            shown.append(status)
            if progress_screenshot and status.startswith("PROGRESS"):
                driver.save_screenshot(str(progress_screenshot))
                progress_screenshot = None
        return status in ("SUCCESS", "FAILURE", "REVOKED")

    WebDriverWait(driver, 30, poll_frequency=0.02).until(done)
    return shown


def progress_screenshot(screenshot: Path) -> Path:
    return screenshot.with_name(f"{screenshot.stem}-progress.png")


def use_the_page(base: str, email: str, screenshot: Path) -> dict[str, object]:
    """Log in, start a long-running task and a chord, watch both; what it saw."""
    with tempfile.TemporaryDirectory() as profile:
        driver = start_chromium(profile)
        try:
            driver.get(f"http://{base}/live")
            driver.find_element(By.ID, "email").send_keys(email)
            driver.find_element(By.ID, "password").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "#login button").click()
            WebDriverWait(driver, 10).until(
                lambda d: "Logged in" in d.find_element(By.ID, "who").text
            )
            for field, value in (("seconds", "2"), ("steps", "8")):
                driver.find_element(By.ID, field).clear()
                driver.find_element(By.ID, field).send_keys(value)
            driver.find_element(By.CSS_SELECTOR, "#long-running button").click()
            long_running = WebDriverWait(driver, 10).until(
                lambda d: d.find_element(By.CSS_SELECTOR, "#tasks .task")
            )
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            shown = watch_until_done(driver, long_running, progress_screenshot(screenshot))
            driver.find_element(By.CSS_SELECTOR, "#chord button").click()
            WebDriverWait(driver, 10).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tasks .task")) == 2
            )
            chord = driver.find_element(By.CSS_SELECTOR, "#tasks .task")  # the newest first
            chord_shown = watch_until_done(driver, chord)
            driver.save_screenshot(str(screenshot))
            return {
                "title": driver.title,
                "shown": shown,
                "outcome": card_text(long_running, "outcome"),
                "chord_shown": chord_shown,
                "chord_outcome": card_text(chord, "outcome"),
                "console": [entry["message"] for entry in driver.get_log("browser")],
            }
        finally:
            driver.quit()


async def test_the_page_is_served_with_a_policy_that_allows_only_this_origin(
    client: AsyncClient,
) -> None:
    page = await client.get("/live")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from elsewhere
    script = await client.get("/live/live.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/live/secrets.txt")).status_code == 404
    description = (await client.get("/api/v1/openapi.json")).json()["info"]["description"]
    assert "[/live](/live)" in description


async def test_the_live_page_shows_progress_then_the_result(
    browser: None, server: str, user: User, request: pytest.FixtureRequest
) -> None:
    screenshot = ARTIFACTS / "live-page.png"
    seen = await asyncio.to_thread(use_the_page, server, user.email, screenshot)

    assert seen["title"].startswith("Live tasks")
    progress = [re.fullmatch(r"PROGRESS (\d+) / 8", text) for text in seen["shown"]]
    steps = [int(match.group(1)) for match in progress if match]
    assert any(0 < step < 8 for step in steps), seen["shown"]
    assert seen["shown"][-1] == "SUCCESS"
    assert seen["outcome"] == "result: 8"
    assert seen["chord_shown"][-1] == "SUCCESS"
    assert seen["chord_outcome"] == "result: 252"  # 21 doubled, 6 times, summed
    # Nothing refused by the Content-Security-Policy, no script error.
    assert seen["console"] == []
    during = progress_screenshot(screenshot)
    assert screenshot.stat().st_size > 10_000 and during.stat().st_size > 10_000
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"live page screenshots: {during} (progress), {screenshot} (done)")
