"""Alembic environment: runs on the connection handed over by `product_importer.migrate`."""

from alembic import context
from sqlalchemy import text

from product_importer.db import Base
from product_importer.models import import_all_models

import_all_models()
config = context.config
connection = config.attributes["connection"]

# Several web processes may start at once; only one may migrate at a time.
MIGRATION_LOCK_ID = 7_246_011
if connection.dialect.name == "postgresql":
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
try:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
finally:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
