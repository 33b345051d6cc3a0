"""The nginx snippet of docs/serve.md, exactly as written, in front of a real ``serve``
started with ``--root-path /newsletter``: the whole flow through the proxy, and a client
that forges X-Forwarded-For still counted as itself. Skipped where nginx is not installed
(Debian: apt-get install nginx-light)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.project import ROOT
from tests.support.serve import Server, SmtpSink, csrf_from, free_port, link_in, start_server

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")


def documented_snippet() -> str:
    """The ``location /newsletter/ { ... }`` block from docs/serve.md."""
    text = (ROOT / "docs" / "serve.md").read_text(encoding="utf-8")
    match = re.search(r"```nginx\n(.*?)```", text, re.S)
    assert match, "docs/serve.md has no nginx block"
    block = re.search(r"location /newsletter/ \{.*?\n\}", match.group(1), re.S)
    assert block
    return block.group(0)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    nginx_port = free_port()
    public = f"http://127.0.0.1:{nginx_port}/newsletter"
    with SmtpSink() as smtp:
        server = start_server(
            tmp_path / "site",
            smtp,
            root_path="/newsletter",
            base_url=public,
            extra='trusted_proxies = ["127.0.0.1"]\nrate_limit_client = 3',
        )
        prefix = tmp_path / "nginx"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / sub).mkdir(parents=True)
        location = documented_snippet().replace("127.0.0.1:8080", f"127.0.0.1:{server.port}")
        (prefix / "nginx.conf").write_text(
            f"""daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{nginx_port};
        {location}
    }}
}}
""",
            encoding="utf-8",
        )
        nginx = subprocess.Popen(
            [
                NGINX,
                "-p",
                str(prefix),
                "-c",
                str(prefix / "nginx.conf"),
                "-e",
                str(prefix / "error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    if httpx.get(f"{public}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert nginx.poll() is None, (prefix / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not come up"
                time.sleep(0.05)
            yield server, public
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
            server.stop()


def test_the_documented_nginx_setup(proxied: tuple[Server, str]) -> None:
    server, public = proxied
    with httpx.Client(timeout=15) as browser:
        page = browser.get(f"{public}/subscribe")
        assert page.status_code == 200
        assert 'action="/newsletter/subscribe"' in page.text
        answer = browser.post(
            f"{public}/subscribe",
            data={"email": "behind@example.com", "csrf_token": csrf_from(page.text)},
        )
        assert answer.status_code == 200, answer.text
        link = link_in(server.smtp.wait_for("behind@example.com")[0], "confirm")
        assert link.startswith(f"{public}/confirm?token=")
        assert browser.get(link).status_code == 200
        assert server.subscriber("behind@example.com").status == "active"  # type: ignore[union-attr]
        # What the digest's List-Unsubscribe makes a mail provider do, through nginx.
        from kcrush_feeds import tokens
        from tests.support.serve import SECRET

        token = tokens.sign(SECRET.encode(), "unsubscribe", "behind@example.com")
        one_click = httpx.post(
            f"{public}/unsubscribe?token={token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200
        assert server.subscriber("behind@example.com").status == "unsubscribed"  # type: ignore[union-attr]


def test_a_forged_forwarded_for_does_not_dodge_the_rate_limit(
    proxied: tuple[Server, str],
) -> None:
    _, public = proxied
    codes = []
    for n in range(4):
        with httpx.Client(timeout=15, headers={"X-Forwarded-For": f"198.51.100.{n}"}) as c:
            page = c.get(f"{public}/subscribe")
            codes.append(
                c.post(
                    f"{public}/subscribe",
                    data={"email": f"forged{n}@example.com", "csrf_token": csrf_from(page.text)},
                ).status_code
            )
    assert codes == [200, 200, 200, 429]  # rate_limit_client = 3: one client, whatever it says
