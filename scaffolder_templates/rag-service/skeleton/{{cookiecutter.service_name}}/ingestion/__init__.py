"""Ingestion: load the sources, chunk, embed and sync them into Qdrant."""
