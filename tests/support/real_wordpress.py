"""A real WordPress on 127.0.0.1 for tests: Debian's ``wordpress`` package served by nginx
and php-fpm, on MariaDB, each process with its own files under a temporary directory.

MariaDB listens on a unix socket only (``--skip-networking``), php-fpm on a unix socket,
nginx on 127.0.0.1 with a free port. WordPress is installed without a browser through
``tests/support/wordpress_site.php``, which also makes every change the tests need through
WordPress's own PHP functions. ``missing()`` says why it cannot run here (the tests then
skip with that reason); ``make test-deps`` installs the packages on Debian as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.serve import free_port

WORDPRESS = Path("/usr/share/wordpress")
MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PHP = shutil.which("php") or "/usr/bin/php"
SCRIPT = Path(__file__).resolve().parent / "wordpress_site.php"
PACKAGES = "wordpress mariadb-server php-fpm php-mysql nginx-light"
# Fast and disposable: nothing here needs to survive a crash.
INNODB = [
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=4M",
    "--innodb-flush-method=nosync",
    "--innodb-doublewrite=0",
    "--innodb-flush-log-at-trx-commit=0",
]


def php_fpm() -> Path | None:
    found = sorted(Path("/usr/sbin").glob("php-fpm*"))
    return found[-1] if found else None


def missing() -> str | None:
    """Why a real WordPress cannot run here, or None."""
    needed = {
        "wordpress": WORDPRESS / "wp-settings.php",
        "mariadb-server": MARIADBD,
        "mariadb-install-db": Path(INSTALL_DB),
        "nginx": Path(NGINX),
        "php (the CLI, pulled in by php-fpm)": Path(PHP),
    }
    absent = [name for name, path in needed.items() if not path.exists()]
    if php_fpm() is None:
        absent.append("php-fpm")
    if not absent and not _php_has_mysqli():
        absent.append("php-mysql")
    if absent:
        return (
            f"a real WordPress needs {', '.join(absent)} (Debian: apt-get install {PACKAGES}; "
            "`make test-deps` does it as root)"
        )
    if os.geteuid() != 0:
        return "the real-WordPress test runs MariaDB, php-fpm and nginx as root: not root"
    return None


def _php_has_mysqli() -> bool:
    modules = subprocess.run([PHP, "-m"], capture_output=True, text=True, check=False).stdout
    return "mysqli" in modules.split()


@dataclass
class RealWordPress:
    """A running site: ``url``, and ``act`` to change it through WordPress's PHP."""

    url: str
    root: Path
    logs: Path

    def act(self, action: str, **request: Any) -> dict[str, Any]:
        """Run one action of wordpress_site.php; its JSON answer."""
        done = subprocess.run(
            [PHP, "-d", "sendmail_path=/bin/true", str(SCRIPT), str(self.root), action],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{action}: {done.stderr}{done.stdout}"
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return answer

    def requests(self) -> list[str]:
        """The request lines nginx has logged (``/path?query status``), oldest first."""
        log = self.logs / "access.log"
        return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def _wait(ready: Any, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise AssertionError(f"{what} did not start: {text[-2000:]}")
        time.sleep(0.05)


@contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_wordpress(base: Path) -> Iterator[RealWordPress]:
    """MariaDB, php-fpm and nginx under ``base``; WordPress tables not yet installed."""
    db, run, root, logs = base / "db", base / "run", base / "root", base / "logs"
    for d in (db, run, root, logs, root / "wp-content" / "uploads", logs / "nginx-tmp"):
        d.mkdir(parents=True, exist_ok=True)
    sock, fpm_sock = run / "mysql.sock", run / "php-fpm.sock"
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    subprocess.run(
        [
            INSTALL_DB,
            "--no-defaults",
            f"--datadir={db}",
            "--user=root",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
            "--skip-name-resolve",
            *INNODB,
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    _docroot(root, sock, url)
    (base / "php-fpm.conf").write_text(
        f"""[global]
pid = {run}/php-fpm.pid
error_log = {logs}/php-fpm.log
daemonize = no
[www]
user = root
group = root
listen = {fpm_sock}
pm = static
pm.max_children = 2
php_admin_value[sendmail_path] = /bin/true
php_admin_value[error_log] = {logs}/php.log
php_admin_flag[log_errors] = on
""",
        encoding="utf-8",
    )
    (base / "nginx.conf").write_text(
        f"""user root root;
daemon off;
pid {run}/nginx.pid;
error_log {logs}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    log_format requests '$request_uri $status';
    access_log {logs}/access.log requests;
    client_body_temp_path {logs}/nginx-tmp;
    proxy_temp_path {logs}/nginx-tmp;
    fastcgi_temp_path {logs}/nginx-tmp;
    uwsgi_temp_path {logs}/nginx-tmp;
    scgi_temp_path {logs}/nginx-tmp;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        index index.php;
        location / {{ try_files $uri $uri/ /index.php?$args; }}
        location ~ \\.php$ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_pass unix:{fpm_sock};
        }}
    }}
}}
""",
        encoding="utf-8",
    )
    fpm = php_fpm()
    assert fpm is not None
    with ExitStack() as stack:
        mariadb = stack.enter_context(
            _process(
                [
                    str(MARIADBD),
                    "--no-defaults",
                    f"--datadir={db}",
                    f"--socket={sock}",
                    "--skip-networking",
                    "--user=root",
                    f"--pid-file={run}/mysql.pid",
                    "--skip-log-bin",
                    *INNODB,
                ],
                logs / "mariadb.log",
            )
        )
        _wait(sock.exists, "MariaDB", mariadb, logs / "mariadb.log")
        subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                f"--socket={sock}",
                "-u",
                "root",
                "-e",
                "CREATE DATABASE wp",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        php = stack.enter_context(
            _process([str(fpm), "-R", "-F", "-y", str(base / "php-fpm.conf")], logs / "fpm.out")
        )
        _wait(fpm_sock.exists, "php-fpm", php, logs / "php-fpm.log")
        nginx = stack.enter_context(
            _process(
                [
                    NGINX,
                    "-p",
                    str(base),
                    "-c",
                    str(base / "nginx.conf"),
                    "-e",
                    str(logs / "nginx-error.log"),
                ],
                logs / "nginx.out",
            )
        )
        _wait(lambda: _answers(url), "nginx", nginx, logs / "nginx-error.log")
        yield RealWordPress(url, root, logs)


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/readme.html", timeout=2)
    except httpx.TransportError:
        return False
    return True


def _docroot(root: Path, sock: Path, url: str) -> None:
    """Debian's WordPress files with our own wp-config.php (Debian's reads /etc/wordpress).

    PHP resolves symlinks in ``__DIR__``, and WordPress finds wp-config.php next to
    wp-load.php: so the top-level scripts are copied, the two big directories linked.
    """
    for entry in WORDPRESS.iterdir():
        if entry.name in ("wp-admin", "wp-includes"):
            (root / entry.name).symlink_to(entry)
        elif entry.suffix == ".php" and entry.name != "wp-config.php":
            shutil.copy(entry, root / entry.name)
    (root / "wp-config.php").write_text(
        f"""<?php
define('DB_NAME', 'wp');
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', 'localhost:{sock}');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
define('WP_HOME', '{url}');
define('WP_SITEURL', '{url}');
define('WP_CONTENT_DIR', __DIR__ . '/wp-content');
// Application passwords need https, or a site that says it is a local one.
define('WP_ENVIRONMENT_TYPE', 'local');
define('DISABLE_WP_CRON', true);   // the test runs the cron hook itself
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);   // nothing leaves the machine
$table_prefix = 'wp_';
if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
""",
        encoding="utf-8",
    )
