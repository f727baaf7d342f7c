# Names the project's commands; each is a script under scripts/ so machines without make work too.
.PHONY: run test lint bench bench-workbook

run:
	scripts/run

test:
	scripts/test

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports

bench:
	.venv/bin/python bench/import_bench.py

bench-workbook:
	.venv/bin/python bench/workbook_bench.py
