# One entry point for people and CI. `make serve` and `make test` work on a fresh clone.
.PHONY: setup serve test lint eval bench fuzz load

setup:
	bash scripts/setup.sh

serve: setup
	.venv/bin/python serve.py

test:
	bash scripts/setup.sh --test
	.venv/bin/ruff check qa tests bench scripts serve.py
	.venv/bin/ruff format --check qa tests bench scripts serve.py
	.venv/bin/mypy
	.venv/bin/python -m pytest -q

eval: setup
	.venv/bin/qa eval --set all

bench: setup
	.venv/bin/python bench/embedding.py

fuzz: setup
	bash bench/fuzz.sh 1000

load: setup
	.venv/bin/python bench/load.py --scenario both --duration 120
