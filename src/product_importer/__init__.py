"""Product Importer: import, manage and publish a product catalogue kept in a SQL database."""

__version__ = "0.1.0"
