"""RAG-service domain knowledge shared by the API, the scaffolder and the template."""
