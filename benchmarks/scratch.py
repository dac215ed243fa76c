"""A throwaway PostgreSQL schema for one benchmark run, so runs never touch each other."""

from __future__ import annotations

import uuid

import psycopg


def create_schema(postgres_url: str) -> tuple[str, str]:
    """Create a fresh schema; answer its name and a database URL whose search_path is it."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in postgres_url else "?"
    return schema, f"{postgres_url}{sep}options=-csearch_path%3D{schema}"


def drop_schema(postgres_url: str, schema: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
