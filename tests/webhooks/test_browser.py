"""The Webhooks page in a real Chromium, against a real receiver on loopback."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from product_importer.webhooks import events
from tests.browser import LiveServer, screenshot, sign_in_page
from tests.webhooks.receiver import Receiver, Reply

pytestmark = pytest.mark.browser


def test_add_test_disable_and_delete_an_endpoint(
    page: Page, live_server: LiveServer, receiver: Receiver
) -> None:
    sign_in_page(page, live_server)
    page.goto("/webhooks")
    expect(page.get_by_text("No webhook endpoints yet.")).to_be_visible()

    page.get_by_role("button", name="Add endpoint").click()
    dialog = page.get_by_role("dialog", name="Add endpoint")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Endpoint URL")).to_be_focused()
    dialog.get_by_label("Endpoint URL").fill("ftp://example.com/hook")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_text("The URL must start with http:// or https://.")).to_be_visible()
    dialog.get_by_label("Endpoint URL").fill(receiver.url)
    dialog.get_by_label("Description").fill("Storefront cache")
    for event in ("products.deleted_all", "import.failed"):
        dialog.get_by_role("checkbox", name=re.compile(re.escape(event))).uncheck()
    screenshot(page, "webhooks-add-dialog")
    dialog.get_by_role("button", name="Save").click()

    secret_dialog = page.get_by_role("dialog", name="Signing secret")
    expect(secret_dialog).to_be_visible()
    secret = secret_dialog.get_by_label("Secret").input_value()
    assert secret.startswith("whsec_")
    receiver.secret = secret
    secret_dialog.get_by_role("button", name="I have saved it").click()
    expect(secret_dialog).to_be_hidden()

    card = page.get_by_role("article", name=receiver.url)
    expect(card).to_be_visible()
    expect(card.get_by_text("Storefront cache")).to_be_visible()
    # Every event but the two unticked above.
    expect(card.get_by_role("list", name="Events").get_by_role("listitem")).to_have_count(
        len(events.EVENT_TYPES) - 2
    )
    expect(card.get_by_text("Not used yet")).to_be_visible()
    expect(card.get_by_text(f"Secret …{secret[-4:]}")).to_be_visible()

    receiver.script(Reply(status=200, body=b'{"pong": true}'))
    card.get_by_role("button", name="Send test").click()
    delivered = re.compile(r"Test delivered: HTTP 200 in \d+ ms")
    expect(card.locator(".wh-test-result")).to_contain_text(delivered)
    expect(page.locator("#announcer")).to_contain_text(delivered)
    expect(card.get_by_label("Response excerpt")).to_have_text('{"pong": true}')
    expect(card.get_by_text("Healthy")).to_be_visible()
    expect(card.get_by_text(re.compile(r"Last: HTTP 200 · \d+ ms"))).to_be_visible()
    [request] = receiver.received
    assert request.verified, request.error
    assert request.payload["type"] == "webhook.test"

    card.get_by_role("button", name="Deliveries").click()
    log = card.get_by_role("region", name="Delivery log")
    expect(log.get_by_text("Delivery log · 1 delivery")).to_be_visible()
    item = log.get_by_role("listitem").filter(has_text="webhook.test").first
    expect(item).to_contain_text("succeeded")
    expect(log.get_by_text(request.webhook_id)).to_be_visible()
    log.get_by_text("Attempts (1)").click()
    expect(log.get_by_text(re.compile(r"HTTP 200 · \d+ ms"))).to_be_visible()
    screenshot(page, "webhooks-1280")

    log.get_by_role("button", name="Redeliver").click()
    receiver.wait_for(2)
    assert receiver.received[1].webhook_id == request.webhook_id
    expect(log.get_by_text("2 attempts")).to_be_visible(timeout=10_000)

    card.get_by_role("switch", name="Enabled").uncheck()
    expect(card.get_by_text("Disabled", exact=True)).to_be_visible()
    expect(card.get_by_text("Disabled by a user.")).to_be_visible()
    expect(card.get_by_role("switch", name="Enabled")).not_to_be_checked()
    page.reload()
    card = page.get_by_role("article", name=receiver.url)
    expect(card.get_by_role("switch", name="Enabled")).not_to_be_checked()

    page.set_viewport_size({"width": 390, "height": 844})
    card.get_by_role("button", name="Deliveries").click()
    expect(card.get_by_role("region", name="Delivery log")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the webhooks page scrolls sideways at 390 px"
    screenshot(page, "webhooks-390")
    page.set_viewport_size({"width": 1280, "height": 800})

    card.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("dialog", name="Delete endpoint?")
    expect(confirm).to_contain_text("This cannot be undone.")
    screenshot(page, "webhooks-delete-confirm")
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No webhook endpoints yet.")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Endpoint deleted.")).to_be_visible()


def test_the_page_is_keyboard_usable_and_shows_failures(
    page: Page, live_server: LiveServer, receiver: Receiver
) -> None:
    sign_in_page(page, live_server)
    page.goto("/webhooks")
    add = page.get_by_role("button", name="Add endpoint")
    add.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Add endpoint")
    expect(dialog.get_by_label("Endpoint URL")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(add).to_be_focused()

    page.keyboard.press("Enter")
    page.keyboard.type(receiver.url)
    page.keyboard.press("Enter")  # submits the form
    secret_dialog = page.get_by_role("dialog", name="Signing secret")
    expect(secret_dialog).to_be_visible()
    page.keyboard.press("Escape")

    card = page.get_by_role("article", name=receiver.url)
    receiver.script(Reply(status=500, body=b"upstream exploded"))
    send = card.get_by_role("button", name="Send test")
    send.focus()
    page.keyboard.press("Enter")
    failed = "Test failed: The receiver answered 500"
    expect(card.locator(".wh-test-result")).to_contain_text(failed)
    expect(page.locator("#announcer")).to_contain_text(failed)
    expect(card.get_by_label("Response excerpt")).to_have_text("upstream exploded")
    expect(card.get_by_text("Last test failed")).to_be_visible()
    screenshot(page, "webhooks-test-failed")

    card.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name="Edit endpoint")
    expect(edit.get_by_label("Endpoint URL")).to_have_value(receiver.url)
    for checkbox in edit.get_by_role("checkbox").all():
        if checkbox.get_attribute("name") == "events":
            checkbox.uncheck()
    edit.get_by_role("button", name="Save").click()
    expect(edit.get_by_text("Choose at least one event.")).to_be_visible()
    edit.get_by_role("checkbox", name=re.compile("import.completed")).check()
    edit.get_by_role("button", name="Save").click()
    expect(edit).to_be_hidden()
    expect(card.get_by_role("list", name="Events")).to_have_text("import.completed")
