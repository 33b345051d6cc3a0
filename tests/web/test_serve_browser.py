"""A real browser (headless Chromium from Debian's chromium + chromium-driver packages,
driven by Selenium) fills in the subscribe form, follows the confirmation link from the
mail, and pauses the newsletter on the preferences page (cookies, CSRF, forms as a person
would meet them). ``make test`` installs the packages where apt is available."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import MISSING, WHY, headless_chromium
from tests.support.serve import Server, SmtpSink, link_in, start_server

pytestmark = pytest.mark.skipif(MISSING, reason=WHY)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with headless_chromium(tmp_path / "chromium-profile") as driver:
        yield driver


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with SmtpSink() as smtp:
        running = start_server(tmp_path / "site", smtp)
        try:
            yield running
        finally:
            running.stop()


def test_a_person_subscribes_and_confirms_in_a_browser(browser: object, server: Server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    driver = browser
    driver.get(f"{server.url}/subscribe")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Subscribe to KCrush Weekly"
    driver.find_element(By.ID, "email").send_keys("seo.yeon@example.com")
    driver.find_element(By.ID, "name").send_keys("Seo-yeon")
    # Only interviews: untick the articles box, by its label as a person would.
    driver.find_element(By.XPATH, "//label[contains(normalize-space(), 'K-Pop Articles')]").click()
    # The honeypot is off-screen and out of the tab order: a person never fills it.
    assert driver.find_element(By.ID, "website").rect["x"] < 0
    driver.find_element(By.XPATH, "//button[normalize-space()='Subscribe']").click()
    # A click that submits a form returns before the next page has loaded: wait for it.
    assert _shows(driver, "h1", "Check your inbox")
    pending = server.subscriber("seo.yeon@example.com")
    assert pending is not None
    assert (pending.status, pending.name, pending.categories) == (
        "pending",
        "Seo-yeon",
        ("kpop-interviews",),
    )

    link = link_in(server.smtp.wait_for("seo.yeon@example.com")[0], "confirm")
    driver.get(link)
    assert driver.find_element(By.TAG_NAME, "h1").text == "You're subscribed"
    assert server.subscriber("seo.yeon@example.com").status == "active"  # type: ignore[union-attr]

    # From the confirmation page to the preferences, and pause it there.
    driver.find_element(By.LINK_TEXT, "choose categories or pause it").click()
    assert _shows(driver, "h1", "Your newsletter preferences")
    driver.find_element(By.XPATH, "//button[normalize-space()='Pause the newsletter']").click()
    assert _shows(driver, "[role=status]", "paused")
    assert server.subscriber("seo.yeon@example.com").status == "paused"  # type: ignore[union-attr]


def _shows(driver: object, css: str, text: str, timeout: float = 10) -> bool:
    """Wait until an element matching ``css`` contains ``text`` (the next page loaded)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d: object) -> bool:
        return text in d.find_element(By.CSS_SELECTOR, css).text  # type: ignore[attr-defined]

    wait = WebDriverWait(
        driver,
        timeout,  # type: ignore[arg-type]
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    return bool(wait.until(found))
