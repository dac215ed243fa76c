"""The database's share of an import, alone: what writing a catalog's rows costs PostgreSQL
when the importer costs nothing.

    .venv/bin/python benchmarks/catalog.py --entities 1000000 --db postgresql --keep
    .venv/bin/python benchmarks/catalog_write_floor.py --schema bench_x
    .venv/bin/python benchmarks/catalog_write_floor.py --schema bench_x --tables catalog_entities
    .venv/bin/python benchmarks/catalog_write_floor.py --schema bench_x \\
        --tables catalog_entities,catalog_search --drop-index value_idx

Reads the rows a kept benchmark catalog holds (``benchmarks/catalog.py --keep``), grouped
as the import wrote them (one location, 500 entities, per transaction), and COPYs them
from two connections (the benchmark's two importers) into empty copies of the tables in
a fresh schema, with the same indexes (``--drop-index`` leaves out those whose name holds
the text; ``--extra-index`` adds one, ``DST`` standing for the schema). No YAML, no
validation, no search-row building: the bytes are ready before the clock starts. Prints
entities/s and the two backends' CPU per entity (what ``benchmarks/catalog.py`` reports
as the database's share), then drops the schema.
"""

from __future__ import annotations

import argparse
import io
import queue
import sys
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import scratch  # noqa: E402
from benchmarks.catalog import cpu_seconds  # noqa: E402

# Each table the import writes, with the column naming the entity a row belongs to.
ENTITY_COLUMN = {
    "catalog_entities": "uid",
    "catalog_search": "entity_uid",
    "catalog_relations": "originating_uid",
}


def export_batches(
    conn: psycopg.Connection, source: str, tables: list[str]
) -> dict[str, list[io.StringIO]]:
    """Every row of ``tables`` as COPY text, one buffer per location (import order)."""
    batch_of: dict[str, int] = {}
    locations: dict[str, int] = {}
    query = f'SELECT location_key, uid FROM "{source}".catalog_entities ORDER BY location_key'
    for location, uid in conn.execute(query):
        batch_of[uid] = locations.setdefault(location, len(locations))
    batches = {table: [io.StringIO() for _ in locations] for table in tables}
    for table in tables:
        columns = [
            name
            for (name,) in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (source, table),
            )
        ]
        at = columns.index(ENTITY_COLUMN[table])
        rest = b""
        with conn.cursor().copy(f'COPY "{source}".{table} TO STDOUT') as copy:
            for chunk in copy:
                lines = (rest + bytes(chunk)).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    text = line.decode()
                    batch = batch_of.get(text.split("\t", at + 1)[at])
                    if batch is not None:
                        batches[table][batch].write(text + "\n")
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schema", required=True, help="a kept benchmark catalog's schema")
    parser.add_argument("--postgres-url", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--tables", default=",".join(ENTITY_COLUMN))
    parser.add_argument("--drop-index", action="append", default=[], metavar="NAME_PART")
    parser.add_argument("--extra-index", action="append", default=[], metavar="DDL")
    parser.add_argument("--writers", type=int, default=2)
    args = parser.parse_args()
    tables = args.tables.split(",")
    target = f"floor_{args.schema}"
    with psycopg.connect(args.postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{target}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{target}"')
        for table in tables:
            conn.execute(
                f'CREATE TABLE "{target}".{table} (LIKE "{args.schema}".{table} INCLUDING ALL)'
            )
            for (index,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                (target, table),
            ).fetchall():
                if any(part in index for part in args.drop_index):
                    conn.execute(f'DROP INDEX "{target}".{index}')
        for ddl in args.extra_index:
            conn.execute(ddl.replace("DST", f'"{target}"'))
        indexes = [
            definition
            for (definition,) in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s", (target,)
            )
        ]
        started = time.perf_counter()
        batches = export_batches(conn, args.schema, tables)
        count = len(next(iter(batches.values())))
        print(f"read {count} locations in {time.perf_counter() - started:.0f} s; indexes:")
        for definition in indexes:
            print(f"  {definition}")
    todo: queue.Queue[int] = queue.Queue()
    for batch in range(count):
        todo.put(batch)
    used: list[float] = []

    def write() -> None:
        with psycopg.connect(args.postgres_url) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            conn.commit()
            start = cpu_seconds(pid)
            while True:
                try:
                    batch = todo.get_nowait()
                except queue.Empty:
                    break
                for table in tables:
                    with conn.cursor().copy(f'COPY "{target}".{table} FROM STDIN') as copy:
                        copy.write(batches[table][batch].getvalue())
                conn.commit()
            used.append(cpu_seconds(pid) - start)

    with psycopg.connect(args.postgres_url, autocommit=True) as conn:
        entities = conn.execute(f'SELECT count(*) FROM "{args.schema}".catalog_entities')
        total = entities.fetchone()[0]  # type: ignore[index]
    started = time.perf_counter()
    writers = [threading.Thread(target=write) for _ in range(args.writers)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    wall = time.perf_counter() - started
    print(
        f"{args.tables}: {total:,} entities in {wall:.1f} s = {total / wall:,.0f} entities/s; "
        f"database CPU {sum(used) * 1e6 / total:.0f} us/entity ({args.writers} writers)"
    )
    scratch.drop_schema(args.postgres_url, target)


if __name__ == "__main__":
    main()
