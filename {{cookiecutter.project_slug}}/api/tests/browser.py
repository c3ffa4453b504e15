"""Pages in a real headless browser: Debian's chromium, driven through
chromedriver. Tests that use it take the `browser` fixture, which skips them
when chromium or chromedriver is missing (`apt install chromium
chromium-driver`), unless REQUIRE_BROWSER=1 says that they must run.
"""

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from testkit import free_port

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
# Where screenshots go; the template's own tests point this elsewhere.
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))
# What the run saved, for its summary.
SAVED_SCREENSHOTS: list[Path] = []
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
]


def browser_missing() -> str | None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return None
    return (
        f"no browser to drive: {', '.join(missing)} missing (apt install chromium chromium-driver)"
    )


def start_chromium(profile: str, *, size: tuple[int, int]) -> webdriver.Chrome:
    """A browser with its own profile, logging its console and its network.
    Every request but those to this machine goes to a proxy that is not there:
    it reaches nothing public, wherever the tests run."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    width, height = size
    for flag in [
        *CHROMIUM_FLAGS,
        f"--proxy-server=http://127.0.0.1:{free_port()}",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def console_problems(driver: webdriver.Chrome) -> list[str]:
    """The errors and warnings in the console since the last call: script
    errors, and anything the Content-Security-Policy refused. (Not Chrome's
    hints, such as a password field outside a form in Swagger UI's dialog.)"""
    return [
        f"{entry['level']}: {entry['message']}"
        for entry in driver.get_log("browser")
        if entry["level"] in ("SEVERE", "WARNING")
    ]


def origins_asked(driver: webdriver.Chrome) -> set[str]:
    """The origins of every request the browser started since the last call
    (pages, scripts, styles, images, fetches), whether it went out or was
    refused. data: and blob: URLs are made on the page itself, and chrome:
    ones by the browser. Socket connections are not in this log: the pages'
    policies (`connect-src 'self'`) refuse any to another origin, and a
    refusal shows in the console."""
    origins = set()
    for entry in driver.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        if event["method"] == "Network.requestWillBeSent":
            url = urlsplit(event["params"]["request"]["url"])
            if url.scheme not in ("data", "blob", "chrome"):
                origins.add(f"{url.scheme}://{url.netloc}")
    return origins


def list_at_the_end(*screenshots: Path) -> None:
    """Name the screenshots in the run's summary (conftest.py), where they
    are seen even when output is captured."""
    SAVED_SCREENSHOTS.extend(screenshots)
