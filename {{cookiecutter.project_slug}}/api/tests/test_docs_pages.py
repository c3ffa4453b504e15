"""`/docs` and `/redoc`: served with everything they load, and used in a real
headless browser (tests/browser.py) that reaches nothing but the API."""

import asyncio
import re
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.docs_pages import ASSETS_PATH, MEDIA_TYPES
from app.core.config import Settings
from app.migrate import create_first_superuser
from testkit import free_port
from tests.browser import (
    ARTIFACTS,
    console_problems,
    list_at_the_end,
    origins_asked,
    start_chromium,
)
from tests.conftest import listening

PAGES = ("/docs", "/redoc")
ME = "/api/v1/users/me"
# Swagger UI's block for GET /api/v1/users/me.
ME_BLOCK = f"//div[contains(@class, 'opblock-get')][.//*[@data-path='{ME}']]"


def offline() -> str:
    """Every request but those to this machine goes to a proxy that is not
    there: the browser reaches nothing public, wherever the tests run."""
    return f"--proxy-server=http://127.0.0.1:{free_port()}"


def in_browser(base: str, use: Callable[[webdriver.Chrome], dict[str, Any]]) -> dict[str, Any]:
    """What `use` saw of the API at `base`, with the console and the origins
    the browser asked for meanwhile; a screenshot when it fails."""
    with tempfile.TemporaryDirectory() as profile:
        driver = start_chromium(profile, offline(), size=(1280, 1000))
        try:
            seen = use(driver)
            return {**seen, "console": console_problems(driver), "origins": origins_asked(driver)}
        except WebDriverException:
            driver.save_screenshot(str(ARTIFACTS / "docs-failure.png"))
            raise
        finally:
            driver.quit()


def use_swagger_ui(base: str, email: str, password: str) -> dict[str, Any]:
    """Open /docs, Authorize with the account, run GET /users/me from the page."""

    def use(driver: webdriver.Chrome) -> dict[str, Any]:
        wait = WebDriverWait(driver, 20)
        driver.get(f"http://{base}/docs")
        title = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".info .title")).text
        me_block = wait.until(lambda d: d.find_element(By.XPATH, ME_BLOCK))
        driver.save_screenshot(str(ARTIFACTS / "docs.png"))

        driver.find_element(By.CSS_SELECTOR, ".scheme-container .authorize").click()
        wait.until(lambda d: d.find_element(By.ID, "oauth_username")).send_keys(email)
        driver.find_element(By.ID, "oauth_password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .authorize").click()
        logout = "//div[contains(@class, 'auth-btn-wrapper')]/button[normalize-space()='Logout']"
        wait.until(lambda d: d.find_element(By.XPATH, logout))
        driver.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .btn-done").click()

        me_block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
        wait.until(lambda d: me_block.find_element(By.CSS_SELECTOR, ".try-out__btn")).click()
        wait.until(lambda d: me_block.find_element(By.CSS_SELECTOR, ".execute")).click()
        answer = wait.until(
            lambda d: me_block.find_element(By.CSS_SELECTOR, ".live-responses-table .response")
        )
        # The request as curl would send it, then the answer.
        curl = me_block.find_element(By.CSS_SELECTOR, ".curl-command")
        driver.execute_script("arguments[0].scrollIntoView()", curl)
        driver.save_screenshot(str(ARTIFACTS / "docs-users-me.png"))
        return {
            "title": title,
            "request": curl.text,
            "status": answer.find_element(By.CSS_SELECTOR, ".response-col_status").text,
            "body": answer.find_element(By.CSS_SELECTOR, ".highlight-code").text,
        }

    return in_browser(base, use)


def read_redoc(base: str, summary: str) -> dict[str, Any]:
    """Open /redoc and find the operation with this summary."""

    def use(driver: webdriver.Chrome) -> dict[str, Any]:
        wait = WebDriverWait(driver, 20)
        driver.get(f"http://{base}/redoc")
        heading = wait.until(lambda d: d.find_element(By.TAG_NAME, "h1")).text
        operation = f"//h2[normalize-space()='{summary}']"
        wait.until(lambda d: d.find_element(By.XPATH, operation))
        driver.save_screenshot(str(ARTIFACTS / "redoc.png"))
        return {
            "heading": heading,
            "menu": len(driver.find_elements(By.CSS_SELECTOR, "li[data-item-id]")),
        }

    return in_browser(base, use)


def open_plain_docs(base: str) -> dict[str, Any]:
    """FastAPI's own /docs: what rendered of it."""

    def use(driver: webdriver.Chrome) -> dict[str, Any]:
        driver.get(f"http://{base}/docs")
        WebDriverWait(driver, 20).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        return {"rendered": driver.find_elements(By.CSS_SELECTOR, ".info .title")}

    return in_browser(base, use)


@pytest.fixture
async def first_superuser(settings: Settings, engine: AsyncEngine) -> tuple[str, str]:
    """The account `make migrate` creates from the settings: e-mail, password."""
    assert await create_first_superuser(settings)
    return settings.FIRST_SUPERUSER_EMAIL, settings.FIRST_SUPERUSER_PASSWORD.get_secret_value()


def urls_in(page: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']*)""", page)


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_loads_only_files_of_this_origin(client: AsyncClient, path: str) -> None:
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = urls_in(page.text)
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assets = [url for url in urls if url.startswith(f"{ASSETS_PATH}/")]
    assert "/api/v1/openapi.json" in urls and len(assets) >= 2, urls
    for url in assets:
        asset = await client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
        assert asset.headers["content-type"] == MEDIA_TYPES[url.rpartition("/")[2]]
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert "immutable" in asset.headers["cache-control"]


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_is_sent_with_a_policy_of_this_origin_only(
    client: AsyncClient, path: str
) -> None:
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in (await client.get(path)).headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    sources = " ".join(policy.values()).split()
    # Only this origin, hashes of the page's own inline scripts, and the
    # schemes that never leave the page.
    allowed = {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}
    assert all(source in allowed or source.startswith("'sha256-") for source in sources), policy
    assert "'unsafe-inline'" not in policy["script-src"] and "eval" not in policy["script-src"]


async def test_only_the_package_files_are_served_compressed(client: AsyncClient) -> None:
    script = await client.get(f"{ASSETS_PATH}/swagger-ui-bundle.js")
    assert script.headers["content-encoding"] == "gzip"
    assert int(script.headers["content-length"]) < len(script.content) / 2
    for missing in ("secrets.txt", "../__init__.py", "%2e%2e/core.py"):
        assert (await client.get(f"{ASSETS_PATH}/{missing}")).status_code == 404, missing
    # FastAPI's own redirect page for other OAuth2 flows is not served.
    assert (await client.get("/docs/oauth2-redirect")).status_code == 404


async def test_swagger_ui_renders_offline_and_authorizes_with_the_first_superuser(
    browser: None,
    server: str,
    first_superuser: tuple[str, str],
    settings: Settings,
) -> None:
    email, password = first_superuser
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seen = await asyncio.to_thread(use_swagger_ui, server, email, password)

    assert seen["title"].startswith(settings.PROJECT_NAME)
    assert "Authorization: Bearer " in seen["request"]
    assert seen["status"] == "200"
    assert f'"email": "{email}"' in seen["body"]
    assert seen["origins"] == {f"http://{server}"}
    assert seen["console"] == []  # nothing refused by the policy, no script error
    shots = [ARTIFACTS / name for name in ("docs.png", "docs-users-me.png")]
    assert all(shot.stat().st_size > 20_000 for shot in shots)
    list_at_the_end(*shots)


async def test_redoc_renders_offline(
    browser: None,
    server: str,
    client: AsyncClient,
    settings: Settings,
) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()
    summary = schema["paths"][ME]["get"]["summary"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seen = await asyncio.to_thread(read_redoc, server, summary)

    assert seen["heading"].startswith(settings.PROJECT_NAME)
    assert seen["menu"] >= len(schema["paths"])
    assert seen["origins"] == {f"http://{server}"}
    assert seen["console"] == []
    shot = ARTIFACTS / "redoc.png"
    assert shot.stat().st_size > 20_000
    list_at_the_end(shot)


async def test_the_browser_reaches_nothing_public(browser: None) -> None:
    """FastAPI's own /docs, which loads Swagger UI from a CDN, in the same
    browser: it asks for the CDN and renders nothing. So the checks above
    would see a page that depends on another origin."""
    async with listening(FastAPI(title="Plain")) as address:
        seen = await asyncio.to_thread(open_plain_docs, address)

    assert "https://cdn.jsdelivr.net" in seen["origins"]
    assert seen["rendered"] == []
