"""`/docs` and `/redoc`: served with everything they load, and used in a real
headless browser (tests/browser.py) that reaches nothing but the API."""

import asyncio
import base64
import hashlib
import re
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from asgi.docs_pages import MEDIA_TYPES
from commands.migrate import create_first_superuser
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


def in_browser(
    base: str, use: Callable[[webdriver.Chrome], dict[str, Any]], name: str
) -> dict[str, Any]:
    """What `use` saw of the API at `base`, with the console and the origins
    the browser asked for meanwhile; `<name>-failure.png` when it fails."""
    with tempfile.TemporaryDirectory() as profile:
        driver = start_chromium(profile, size=(1280, 1000))
        try:
            seen = use(driver)
            return {**seen, "console": console_problems(driver), "origins": origins_asked(driver)}
        except WebDriverException:
            driver.save_screenshot(str(ARTIFACTS / f"{name}-failure.png"))
            raise
        finally:
            driver.quit()


def waiting(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    # Swagger UI and ReDoc are React apps: an element found may be redrawn.
    return WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException])


def in_me_block(*classes: str) -> str:
    """XPath of an element in the users/me block, by its classes from the outside in."""
    steps = [f"//*[contains(concat(' ', @class, ' '), ' {name} ')]" for name in classes]
    return ME_BLOCK + "".join(steps)


def use_swagger_ui(base: str, email: str, password: str) -> dict[str, Any]:
    """Open /docs, Authorize with the account, run GET /users/me from the page."""

    def use(driver: webdriver.Chrome) -> dict[str, Any]:
        wait = waiting(driver)
        driver.get(f"http://{base}/docs")
        title = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".info .title").text)
        wait.until(lambda d: d.find_element(By.XPATH, ME_BLOCK))
        driver.save_screenshot(str(ARTIFACTS / "docs.png"))

        driver.find_element(By.CSS_SELECTOR, ".scheme-container .authorize").click()
        wait.until(lambda d: d.find_element(By.ID, "oauth_username")).send_keys(email)
        driver.find_element(By.ID, "oauth_password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .authorize").click()
        logout = "//div[contains(@class, 'auth-btn-wrapper')]/button[normalize-space()='Logout']"
        wait.until(lambda d: d.find_element(By.XPATH, logout))
        driver.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .btn-done").click()

        open_block = in_me_block("opblock-summary-control")
        wait.until(lambda d: d.find_element(By.XPATH, open_block)).click()
        wait.until(lambda d: d.find_element(By.XPATH, in_me_block("try-out__btn"))).click()
        wait.until(lambda d: d.find_element(By.XPATH, in_me_block("execute"))).click()
        # The answer the page received, not the documented responses below it.
        answer = ("live-responses-table", "response")
        status_cell = in_me_block(*answer, "response-col_status")
        status = wait.until(lambda d: d.find_element(By.XPATH, status_cell).text)
        body = driver.find_element(By.XPATH, in_me_block(*answer, "highlight-code")).text
        # The request as curl would send it, then the answer.
        curl = driver.find_element(By.XPATH, in_me_block("curl-command"))
        driver.execute_script("arguments[0].scrollIntoView()", curl)
        driver.save_screenshot(str(ARTIFACTS / "docs-users-me.png"))
        return {"title": title, "request": curl.text, "status": status, "body": body}

    return in_browser(base, use, "docs")


def read_redoc(base: str) -> dict[str, Any]:
    """Open /redoc: its heading, and the operations it lists once drawn."""

    def use(driver: webdriver.Chrome) -> dict[str, Any]:
        wait = waiting(driver)
        driver.get(f"http://{base}/redoc")
        heading = wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text)
        operations = wait.until(
            lambda d: [
                h2.text
                for h2 in d.find_elements(By.CSS_SELECTOR, "[data-section-id*='/operation/'] h2")
            ]
        )
        driver.save_screenshot(str(ARTIFACTS / "redoc.png"))
        return {
            "heading": heading,
            "operations": operations,
            "menu": len(driver.find_elements(By.CSS_SELECTOR, "li[data-item-id]")),
        }

    return in_browser(base, use, "redoc")


def open_plain_docs(base: str) -> dict[str, Any]:
    """FastAPI's own /docs, given time to load: whether Swagger UI arrived."""

    def use(driver: webdriver.Chrome) -> dict[str, Any]:
        driver.get(f"http://{base}/docs")
        WebDriverWait(driver, 20).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        return {"swagger_ui": driver.execute_script("return typeof SwaggerUIBundle")}

    return in_browser(base, use, "plain-docs")


@pytest.fixture
async def first_superuser(settings: Settings, engine: AsyncEngine) -> tuple[str, str]:
    """The account `make migrate` creates from the settings: e-mail, password.
    (With `engine` among its fixtures, the test's tables are emptied after it.)"""
    assert await create_first_superuser(settings)
    return settings.FIRST_SUPERUSER_EMAIL, settings.FIRST_SUPERUSER_PASSWORD.get_secret_value()


def urls_in(page: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']*)""", page)


async def asset_urls(client: AsyncClient, path: str) -> list[str]:
    return [
        url for url in urls_in((await client.get(path)).text) if url.startswith("/docs/assets/")
    ]


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_loads_only_files_of_this_origin(client: AsyncClient, path: str) -> None:
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = urls_in(page.text)
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assets = await asset_urls(client, path)
    assert "/api/v1/openapi.json" in urls and len(assets) >= 2, urls
    for url in assets:
        asset = await client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
        assert asset.headers["content-type"] == MEDIA_TYPES[url.rpartition("/")[2]]
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert "immutable" in asset.headers["cache-control"]
        assert b"https://cdn." not in asset.content, url  # nothing loaded from a CDN


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_is_sent_with_a_policy_of_this_origin_only(
    client: AsyncClient, path: str
) -> None:
    page = await client.get(path)
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    sources = " ".join(policy.values()).split()
    # Only this origin, the schemes that never leave the page, and hashes of
    # the page's own inline scripts, each of which must be allowed.
    allowed = {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}
    assert all(source in allowed or source.startswith("'sha256-") for source in sources), policy
    assert "'unsafe-inline'" not in policy["script-src"] and "eval" not in policy["script-src"]
    for script in re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy["script-src"].split()


async def test_text_is_sent_compressed_and_nothing_else_is_served(client: AsyncClient) -> None:
    assets = {url.rpartition("/")[2]: url for url in await asset_urls(client, "/docs")}
    script = await client.get(assets["swagger-ui-bundle.js"])
    assert script.headers["content-encoding"] == "gzip"
    assert int(script.headers["content-length"]) < len(script.content) / 2
    plain = await client.get(
        assets["swagger-ui-bundle.js"], headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers and plain.content == script.content
    assert "content-encoding" not in (await client.get(assets["favicon.png"])).headers

    folder = assets["favicon.png"].rpartition("/")[0]
    for missing in ("secrets.txt", "%2e%2e", "core.py", "__init__.py"):
        assert (await client.get(f"{folder}/{missing}")).status_code == 404, missing
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
    browser: None, server: str, client: AsyncClient, settings: Settings
) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seen = await asyncio.to_thread(read_redoc, server)

    assert seen["heading"].startswith(settings.PROJECT_NAME)
    assert schema["paths"][ME]["get"]["summary"] in seen["operations"]
    assert seen["menu"] >= len(schema["paths"])
    assert seen["origins"] == {f"http://{server}"}
    assert seen["console"] == []
    shot = ARTIFACTS / "redoc.png"
    assert shot.stat().st_size > 20_000
    list_at_the_end(shot)


async def test_the_browser_reaches_nothing_public(browser: None) -> None:
    """FastAPI's own /docs, which loads Swagger UI from a CDN, in the same
    browser: it asks for the CDN and gets nothing. So the checks above would
    see a page that depends on another origin."""
    async with listening(FastAPI(title="Plain")) as address:
        seen = await asyncio.to_thread(open_plain_docs, address)

    assert "https://cdn.jsdelivr.net" in seen["origins"]
    assert seen["swagger_ui"] == "undefined"
