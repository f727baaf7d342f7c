"""The architecture's seams: what the layers contract cannot see by reading imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from product_importer.auth import auditing
from product_importer.catalog import models as catalog_models
from product_importer.history import models as history_models
from product_importer.tasks import registry

ROOT = Path(__file__).resolve().parents[1]


def test_change_records_are_as_wide_as_the_products_they_keep() -> None:
    assert history_models.SKU_MAX_LENGTH == catalog_models.SKU_MAX_LENGTH
    assert history_models.NAME_MAX_LENGTH == catalog_models.NAME_MAX_LENGTH


def test_wiring_registers_every_domains_work_and_plugs_in_the_audit_log() -> None:
    names = {spec.name for spec in registry.all_periodic()}
    assert {"imports.recover", "audit.prune", "auth.prune_rate_limits"} <= names
    assert registry.get_task("imports.run").queue == "imports"
    assert registry.get_waiting_check("imports") is not None
    assert auditing._recorder is not None


def test_the_platform_alone_knows_no_task() -> None:
    """A process that imports only the platform has no task until the edges wire the domains:
    the registry names none of its users."""
    code = (
        "from product_importer.tasks import registry\n"
        "assert registry.all_periodic() == [], registry.all_periodic()\n"
        "from product_importer import wiring\n"
        "wiring.connect()\n"
        "assert registry.all_periodic()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_no_module_is_over_600_lines_outside_migrations() -> None:
    package = ROOT / "src" / "product_importer"
    long = {
        str(path.relative_to(package)): lines
        for path in package.rglob("*.py")
        if "migrations" not in path.parts
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert long == {}, "split these along their reasons to change"


def test_no_two_packages_import_each_other_and_no_module_cycle() -> None:
    """Counting imports inside functions too (grimp reads every import statement), leaving out
    `if TYPE_CHECKING:` blocks as the layers contract does."""
    import grimp

    graph = grimp.build_graph("product_importer", exclude_type_checking_imports=True)

    def package(module: str) -> str:
        return module.split(".")[1] if "." in module else module

    edges = {
        (package(module), package(imported))
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if package(module) != package(imported)
    }
    assert sorted((a, b) for a, b in edges if (b, a) in edges and a < b) == []
    cycles = [
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.find_shortest_chain(importer=imported, imported=module) is not None
    ]
    assert cycles == []
