"""Catalog tables (SQLModel). Filled in by the catalog work."""
