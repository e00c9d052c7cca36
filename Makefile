# Shortcuts for the two commands of tasks.py (which needs only Python, not make).
.PHONY: help report test lowest lint bench docs

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

report:  ## write the demo data, load it, print the weekly SLO report
	python3 tasks.py report

test:  ## run the whole test suite
	python3 tasks.py test

lowest:  ## the test suite with every dependency at its declared lower bound
	python3 tasks.py lowest

lint:  ## ruff and mypy on the package
	.venv/bin/ruff check mysetlist_slo tests bench && .venv/bin/mypy

bench:  ## ingest benchmark against pandas (N=2 million requests)
	.venv/bin/python bench/bench_ingest.py --requests 2000000

docs:  ## build the documentation (API reference, guide, CLI, notebooks) into site/, strictly
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict
