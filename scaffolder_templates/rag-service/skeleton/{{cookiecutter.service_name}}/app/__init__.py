"""{{ cookiecutter.service_name }}: RAG API over the team's documents."""
