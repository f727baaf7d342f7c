"""One place that imports every domain's tables, so metadata and migrations see them all."""


def import_all_models() -> None:
    from product_importer.auth import models as _auth  # noqa: F401
    from product_importer.catalog import models as _catalog  # noqa: F401
