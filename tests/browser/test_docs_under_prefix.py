"""Swagger UI through nginx under /chatbot/: Authorize posts to the prefixed token URL and
"Try it out" reaches the API with the token."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tests.browser.conftest import PREFIX

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

SCREENSHOT = (
    Path(__file__).resolve().parents[2] / "docs/screenshots/docs-authorize-under-prefix.png"
)
EMAIL = "swagger@example.com"
PASSWORD = "swagger password 1"
TIMEOUT = 30
HANDBOOK = (
    "Employees receive 25 days of paid annual leave. "
    "Unused leave can be carried over until the end of March."
)
OPERATION = "#operations-chat-chat_api_chat__post"
OAUTH2_FORM = (
    "//div[contains(@class, 'auth-container')][.//h4[contains(., 'OAuth2PasswordBearer')]]"
)


def test_docs_authorize_under_prefix_chat_answers_200(proxy: str, browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait

    signup = httpx.post(
        f"{proxy}/api/signup/",
        json={"email": EMAIL, "username": "swagger", "password": PASSWORD},
        timeout=30,
    )
    assert signup.status_code == 201, signup.text
    login = httpx.post(f"{proxy}/api/login/", json={"email": EMAIL, "password": PASSWORD})
    document = httpx.post(
        f"{proxy}/api/documents/",
        json={"title": "Handbook", "content": HANDBOOK},
        headers={"Authorization": f"Bearer {login.json()['access']}"},
        timeout=60,
    )
    assert document.status_code == 201, document.text
    wait = WebDriverWait(browser, TIMEOUT)

    browser.get(f"{proxy}/docs")
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.authorize"))).click()
    form = wait.until(ec.visibility_of_element_located((By.XPATH, OAUTH2_FORM)))
    # The dialog shows the token URL the password flow posts to.
    assert f"Token URL: {PREFIX}/api/token/" in form.text
    form.find_element(By.ID, "oauth_username").send_keys(EMAIL)
    form.find_element(By.ID, "oauth_password").send_keys(PASSWORD)
    form.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
    # Success swaps Authorize for Logout; a failed token request shows an error instead.
    wait.until(lambda _: "Logout" in form.text or form.find_elements(By.CSS_SELECTOR, ".errors"))
    errors = form.find_elements(By.CSS_SELECTOR, ".errors")
    assert not errors, errors[0].text
    form.find_element(By.CSS_SELECTOR, "button.btn-done").click()

    operation = browser.find_element(By.CSS_SELECTOR, OPERATION)
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    try_out = (By.CSS_SELECTOR, f"{OPERATION} button.try-out__btn")
    wait.until(ec.element_to_be_clickable(try_out)).click()
    body = operation.find_element(By.CSS_SELECTOR, "textarea.body-param__text")
    body.clear()
    body.send_keys('{"message": "How many days of leave do I get?"}')
    operation.find_element(By.CSS_SELECTOR, "button.execute").click()
    live = f"{OPERATION} .live-responses-table tbody tr.response"
    status = wait.until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, f"{live} .response-col_status"))
    )
    response = browser.find_element(By.CSS_SELECTOR, f"{live} .response-col_description")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", response)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))

    assert status.text.strip() == "200", response.text
    assert '"response"' in response.text
    # The request Swagger sent went through the prefix, bearer token included.
    curl = operation.find_element(By.CSS_SELECTOR, ".curl-command").text
    assert f"{PREFIX}/api/chat/" in curl
    assert "Authorization: Bearer " in curl
    loaded: list[str] = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    assert all(url.startswith(f"{proxy}/") for url in loaded), loaded


def test_redoc_under_prefix_renders_from_bundled_assets(proxy: str, browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait

    # Record what the page's Content-Security-Policy blocks, from before its scripts run.
    browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": "window.blocked = []; document.addEventListener("
            "'securitypolicyviolation', (e) => window.blocked.push(e.blockedURI));"
        },
    )
    browser.get(f"{proxy}/redoc")
    title = WebDriverWait(browser, TIMEOUT).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "h1"))
    )
    assert title.text.startswith("RAG Chatbot API")
    # ReDoc read the schema through the prefix and rendered its operations.
    assert "/api/chat/" in browser.find_element(By.TAG_NAME, "body").text
    loaded: list[str] = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    blocked: list[str] = browser.execute_script("return window.blocked")
    assert f"{proxy}/static/docs/redoc.standalone.js" in loaded
    # ReDoc's CDN logo is refused by the page's policy; nothing else leaves our host.
    assert all(url.startswith("https://cdn.redoc.ly/") for url in blocked), blocked
    fetched = [url for url in loaded if url not in blocked]
    assert all(url.startswith(f"{proxy}/") for url in fetched), loaded
