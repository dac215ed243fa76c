.PHONY: serve test lint

serve:  ## set up .venv and start the portal on embedded defaults (http://127.0.0.1:7007)
	scripts/serve.sh

test:  ## set up .venv and run the whole test suite
	scripts/test.sh

lint:
	scripts/bootstrap.sh test && .venv/bin/ruff check .
