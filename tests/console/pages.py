"""What the console's browser tests share: a project with a key, a signed-in page, the check for
unlabelled fields, and where screenshots go."""

from __future__ import annotations

import uuid
from pathlib import Path

from services.suite.suite import LocalSuite
from tuneforge import Client

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "console-screenshots"
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def project_with_key(suite: LocalSuite, prefix: str, role: str = "admin") -> tuple[str, str]:
    project = f"{prefix}-{uuid.uuid4().hex[:6]}"
    with Client(suite.endpoints, api_key=suite.admin_key, project=project) as client:
        client.iam.create_project(project)
        return project, client.iam.create_key(role, display_name="console test").token


def signed_in(browser: object, suite: LocalSuite, project: str, key: str, viewport: dict = WIDE) -> object:
    page = browser.new_page(viewport=viewport)  # type: ignore[attr-defined]
    page.goto(suite.endpoints["console"] + "/")
    page.get_by_label("Language", exact=True).select_option("en")
    page.get_by_label("Project", exact=True).fill(project)
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for()
    return page


def unlabelled(page: object) -> list[str]:
    """Form fields no label names (by `for`, by wrapping, or aria-label)."""
    return page.evaluate(  # type: ignore[attr-defined]
        """() => [...document.querySelectorAll('input, select, textarea')]
              .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
              .map(el => el.outerHTML.slice(0, 120))"""
    )
