"""The accounts pages in Chromium: an admin adds an editor and a viewer, each sees only what
their role can do, a user changes their password, and the audit page shows all of it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import LiveServer, screenshot, sign_in_page, wait_until
from tests.factories import make_product

pytestmark = pytest.mark.timeout(300)


def _sign_in(context: Any, username: str, password: str) -> Any:
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def _add_user(page: Any, username: str, role: str) -> str:
    page.get_by_label("User name").fill(username)
    page.get_by_label("Role", exact=True).select_option(role)
    page.get_by_role("button", name="Add user").click()
    once = page.locator("#once-value")
    once.wait_for()
    password: str = once.input_value()
    assert len(password) >= 16
    page.get_by_role("button", name="Done").click()
    page.locator(f'tr[data-user="{username}"]').wait_for()
    return password


def _set_own_password(page: Any, one_time: str, own: str) -> str:
    """At the first sign-in with a one-time password every page leads to the account page's
    password form; once set, the pages open."""
    page.wait_for_url("**/account#password-form")
    assert page.get_by_text("Your password is a one-time password from an admin").is_visible()
    page.goto("/products")
    page.wait_for_url("**/account#password-form")
    page.get_by_label("One-time password").fill(one_time)
    page.get_by_label("New password (at least 8 characters)").fill(own)
    page.get_by_label("New password again").fill(own)
    page.get_by_role("button", name="Change password").click()
    page.wait_for_url(lambda url: "/account" not in url)
    return own


def _both_widths(page: Any, name: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    screenshot(page, f"{name}-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, f"{name}-390")
    page.set_viewport_size({"width": 1280, "height": 800})


def test_roles_in_the_browser(page: Any, browser: Any, live_server: LiveServer) -> None:
    violations: list[str] = []

    def watch(target: Any) -> None:
        target.on(
            "console",
            lambda message: (
                violations.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )

    watch(page)
    make_product(live_server.database, "LAMP-1", "Desk lamp")
    sign_in_page(page, live_server)
    page.goto("/users")
    editor_password = _add_user(page, "eddie", "editor")
    viewer_password = _add_user(page, "vera", "viewer")
    assert page.locator('tr[data-user="vera"] select').input_value() == "viewer"
    _both_widths(page, "accounts-users")

    viewer_context = browser.new_context(base_url=live_server.url)
    viewer = _sign_in(viewer_context, "vera", viewer_password)
    watch(viewer)
    _both_widths(viewer, "accounts-one-time-password")
    viewer_password = _set_own_password(viewer, viewer_password, "vera's first password")
    viewer.goto("/products")
    viewer.locator("#products-body tr").first.wait_for()
    nav = viewer.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Webhooks").count() == 0
    assert nav.get_by_role("link", name="Users").count() == 0
    assert viewer.get_by_role("button", name="New product").count() == 0
    assert viewer.get_by_role("button", name="Delete all products").count() == 0
    assert viewer.get_by_role("button", name="Edit LAMP-1").count() == 0
    assert viewer.get_by_role("button", name="Delete LAMP-1").count() == 0
    assert viewer.get_by_role("link", name="Export CSV").is_visible()
    _both_widths(viewer, "accounts-viewer-products")
    viewer.goto("/import")
    assert viewer.get_by_role("button", name="Import").count() == 0
    assert viewer.get_by_text("Starting one needs the editor role").is_visible()
    refused = viewer.goto("/webhooks")
    assert refused is not None and refused.status == 403
    assert viewer.get_by_text("This needs the admin role").is_visible()
    # The Not-allowed page keeps the navigation and Sign out.
    assert (
        viewer.get_by_role("navigation", name="Main")
        .get_by_role("link", name="Products")
        .is_visible()
    )
    assert viewer.get_by_role("button", name="Sign out").is_visible()
    _both_widths(viewer, "accounts-forbidden")

    editor_context = browser.new_context(base_url=live_server.url)
    editor = _sign_in(editor_context, "eddie", editor_password)
    watch(editor)
    _set_own_password(editor, editor_password, "eddie's own password")
    editor.goto("/products")
    editor.locator("#products-body tr").first.wait_for()
    assert editor.get_by_role("button", name="New product").is_visible()
    assert editor.get_by_role("button", name="Edit LAMP-1").is_visible()
    assert editor.get_by_role("button", name="Delete all products").count() == 0
    assert (
        editor.get_by_role("navigation", name="Main").get_by_role("link", name="Webhooks").count()
        == 0
    )
    editor.goto("/import")
    assert editor.get_by_role("button", name="Import").is_visible()
    editor_context.close()

    # The viewer changes her password from the account page; her other browser is signed out.
    second_context = browser.new_context(base_url=live_server.url)
    second = _sign_in(second_context, "vera", viewer_password)
    viewer.goto("/account")
    viewer.get_by_label("Current password").fill(viewer_password)
    viewer.get_by_label("New password (at least 8 characters)").fill("vera's own password")
    viewer.get_by_label("New password again").fill("vera's own password")
    viewer.get_by_role("button", name="Change password").click()
    viewer.get_by_text("Password changed.").wait_for()
    second.goto("/products")
    assert "/login" in second.url
    second_context.close()
    _both_widths(viewer, "accounts-account")
    viewer_context.close()
    again = browser.new_context(base_url=live_server.url)
    _sign_in(again, "vera", "vera's own password")
    again.close()

    # An API token, shown once, then revoked.
    page.goto("/tokens")
    page.get_by_label("Name").fill("nightly sync")
    page.get_by_label("Role").select_option("editor")
    page.get_by_role("button", name="Create token").click()
    page.locator("#once-value").wait_for()
    assert page.locator("#once-value").input_value().startswith("pi_")
    page.get_by_role("button", name="Done").click()
    page.locator('tr[data-token="nightly sync"]').wait_for()
    _both_widths(page, "accounts-tokens")
    page.get_by_role("button", name="Revoke nightly sync").click()
    page.locator('tr[data-token="nightly sync"] .status-revoked').wait_for()

    page.goto("/audit")
    page.locator('#audit-body tr[data-action="user.change_password"]').first.wait_for()
    body = page.locator("#audit-body").inner_text()
    for expected in ("user.create", "user:eddie", "user:vera", "auth.sign_in", "token.revoke"):
        assert expected in body, expected
    page.get_by_label("What").select_option("user")
    wait_until(
        lambda: page.evaluate(
            "() => [...document.querySelectorAll('#audit-body tr')]"
            ".every((row) => row.dataset.action.startsWith('user.'))"
        ),
        what="only user.* entries listed",
    )
    _both_widths(page, "accounts-audit")

    page.goto("/docs")
    page.locator(".swagger-ui .info").wait_for()  # Swagger UI starts under the policy
    assert violations == []
