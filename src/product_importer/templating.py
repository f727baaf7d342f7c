"""The Jinja environment every page is rendered with: the web pages and the sign-in form."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from product_importer import __version__

WEB_DIR = Path(__file__).parent / "web"
STATIC_DIR = WEB_DIR / "static"
templates = Jinja2Templates(directory=WEB_DIR / "templates")
templates.env.globals["version"] = __version__
