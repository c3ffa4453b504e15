"""The live page in a real headless browser (tests/browser.py), against the
API served by uvicorn and a real worker. It starts the example tasks: removed
with the examples."""

import asyncio
import re
import tempfile
from pathlib import Path

import pytest
from httpx import AsyncClient
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from app.models import User
from tests.browser import (
    ARTIFACTS,
    console_problems,
    list_at_the_end,
    origins_asked,
    start_chromium,
)
from tests.conftest import PASSWORD

pytestmark = pytest.mark.usefixtures("worker")


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
        driver = start_chromium(profile, size=(900, 1100))
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
                "console": console_problems(driver),
                "origins": origins_asked(driver),
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
    browser: None, server: str, user: User
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
    # Nothing refused by the Content-Security-Policy, no script error, and
    # nothing asked of another origin.
    assert seen["console"] == []
    assert seen["origins"] == {f"http://{server}"}
    during = progress_screenshot(screenshot)
    assert screenshot.stat().st_size > 10_000 and during.stat().st_size > 10_000
    list_at_the_end(during, screenshot)
