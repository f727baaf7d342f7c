"""Accessibility checks in the browser tests: axe-core run inside a Playwright page.

axe-core (the engine behind most accessibility checkers) comes from the npm registry at a pinned
version; `npm pack` fetches its tarball once into `.cache/`, its integrity is checked against the
pin, and `axe.min.js` is kept from it. Nothing is loaded from a CDN. `scripts/test` fetches it
before the suite runs (`python -m tests.a11y`); a test run without it fetches it on first use.

    assert_accessible(page, "products: new product dialog")

fails listing every offending element: rule, impact, CSS selector, HTML and what to fix.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

AXE_VERSION = "4.14.1"
# npm's own integrity string for that tarball (`npm view axe-core@4.14.1 dist.integrity`).
AXE_INTEGRITY = (
    "sha512-"
    "FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
)
ROOT = Path(__file__).resolve().parent.parent
AXE_FILE = ROOT / ".cache" / f"axe-core-{AXE_VERSION}" / "axe.min.js"

# WCAG 2.0 and 2.1, levels A and AA, plus axe's best practices (among them `region`: all
# content inside landmarks), as the audit in the issue ran them.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
# A desktop and a phone.
WIDTHS = (1280, 390)

# (label, width, offending elements) of every check this test process ran since the last test
# report; tests/conftest.py moves them into the report, for the summary at the end of the run.
CHECKED: list[tuple[str, int, int]] = []


def fetch_axe() -> Path:
    """Fetch the pinned axe-core from the npm registry into .cache/ unless it is there."""
    if AXE_FILE.exists():
        return AXE_FILE
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm is not installed (Debian: apt-get install npm)")
    AXE_FILE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=AXE_FILE.parent) as scratch:
        subprocess.run(
            [npm, "pack", f"axe-core@{AXE_VERSION}", "--pack-destination", scratch, "--silent"],
            check=True,
            cwd=scratch,
            timeout=300,
            stdout=subprocess.DEVNULL,
        )
        tarball = Path(scratch) / f"axe-core-{AXE_VERSION}.tgz"
        digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        if f"sha512-{digest}" != AXE_INTEGRITY:
            raise RuntimeError(f"axe-core {AXE_VERSION} from npm does not match its pinned hash")
        with tarfile.open(tarball) as archive:
            member = archive.extractfile("package/axe.min.js")
            assert member is not None
            staged = Path(scratch) / "axe.min.js"
            staged.write_bytes(member.read())
        # Two test workers may fetch at once: each renames a whole file into place.
        os.replace(staged, AXE_FILE)
    return AXE_FILE


@functools.cache
def axe_script() -> str:
    from tests.conftest import IN_CI

    try:
        return fetch_axe().read_text(encoding="utf-8")
    except (FileNotFoundError, subprocess.SubprocessError) as error:
        if IN_CI:
            pytest.fail(f"axe-core {AXE_VERSION} is required in CI: {error}")
        pytest.skip(f"axe-core {AXE_VERSION} could not be fetched ({error}); run scripts/test")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_script())
    options = {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]}
    results: dict[str, Any] = page.evaluate(
        "(options) => window.axe.run(document, options)",
        options,
    )
    violations: list[dict[str, Any]] = results["violations"]
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    """One paragraph per offending element, with the rule it breaks and how to fix it."""
    lines: list[str] = []
    for violation in violations:
        lines.append(
            f"- {violation['id']} ({violation['impact']}): {violation['help']} "
            f"[{violation['helpUrl'].split('?')[0]}]"
        )
        for node in violation["nodes"]:
            target = " ".join(
                " >> ".join(part) if isinstance(part, list) else part for part in node["target"]
            )
            lines.append(f"    at {target}")
            lines.append(f"       {node['html'][:300]}")
            summary = (node.get("failureSummary") or "").replace("\n", "\n       ")
            if summary:
                lines.append(f"       {summary}")
    return "\n".join(lines)


def check_accessible(
    page: Any, label: str, widths: tuple[int, ...] | None = None, *, record: bool = True
) -> list[str]:
    """Run axe at each width (1280 and 390 px unless told) and give one report per failing
    width; the page is left at the width it had. `record=False` keeps the check out of the
    run's accessibility summary (for tests of the checker itself)."""
    before = page.viewport_size or {"width": WIDTHS[0], "height": 800}
    failures: list[str] = []
    try:
        for width in widths or WIDTHS:
            page.set_viewport_size({"width": width, "height": before["height"]})
            # Let resize observers and the next paint run, as they would before a person acts.
            page.evaluate("() => new Promise((r) => requestAnimationFrame(() => setTimeout(r)))")
            violations = axe_violations(page)
            count = sum(len(violation["nodes"]) for violation in violations)
            if record:
                CHECKED.append((label, width, count))
            if violations:
                failures.append(
                    f"{label} at {width} px: {count} accessibility violation(s) found by "
                    f"axe-core {AXE_VERSION}:\n{describe(violations)}"
                )
    finally:
        page.set_viewport_size(before)
    return failures


def assert_accessible(
    page: Any, label: str, widths: tuple[int, ...] | None = None, *, record: bool = True
) -> None:
    """Fail, listing each offending element, when axe finds any violation on the page as it is
    now, at 1280 and 390 px wide (or at `widths`)."""
    failures = check_accessible(page, label, widths, record=record)
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


if __name__ == "__main__":
    print(f"axe-core {AXE_VERSION}: {fetch_axe().relative_to(ROOT)}")
