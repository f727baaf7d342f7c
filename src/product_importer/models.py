"""One place that imports every domain's tables, so metadata and migrations see them all."""


def import_all_models() -> None:
    from product_importer.audit import models as _audit  # noqa: F401
    from product_importer.auth import models as _auth  # noqa: F401
    from product_importer.auth import ratelimit_models as _ratelimit  # noqa: F401
    from product_importer.catalog import models as _catalog  # noqa: F401
    from product_importer.feeds import models as _feeds  # noqa: F401
    from product_importer.history import models as _changes  # noqa: F401
    from product_importer.imports import models as _imports  # noqa: F401
    from product_importer.tasks import models as _tasks  # noqa: F401
    from product_importer.webhooks import models as _webhooks  # noqa: F401
