"""The software catalog: Backstage-compatible entities, relations, queries, locations."""
