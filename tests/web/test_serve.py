"""``kcrush-feeds serve`` over real HTTP: double opt-in, one-click unsubscribe, preferences,
bad tokens, CSRF, the honeypot, body and rate limits. One real server (a subprocess of the
real command) and one real SMTP sink (aiosmtpd) for the module; each test uses addresses
of its own, so the tests do not depend on each other's order."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from kcrush_feeds import tokens
from kcrush_feeds.model import Subscriber
from tests.support.serve import (
    SECRET,
    Server,
    SmtpSink,
    body_of,
    csrf_from,
    link_in,
    start_server,
    subscribe,
)

SECRET_BYTES = SECRET.encode()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpSink) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("serve")
    # Generous limits: this module's tests share one client address.
    limits = "rate_limit_client = 1000\nrate_limit_address = 5"
    running = start_server(directory, smtp, extra=limits)
    yield running
    running.stop()


def confirmed(server: Server, address: str, **kwargs: str) -> Subscriber:
    """Subscribe ``address`` and follow the link in the mail; the active subscriber."""
    with server.client() as client:
        assert subscribe(client, address, **kwargs).status_code == 200
        mail = server.smtp.wait_for(address)[-1]
        assert client.get(link_in(mail, "confirm")).status_code == 200
    found = server.subscriber(address)
    assert found is not None and found.status == "active"
    return found


def unsubscribe_url(server: Server, address: str) -> str:
    return f"{server.url}/unsubscribe?token={tokens.sign(SECRET_BYTES, 'unsubscribe', address)}"


def preferences_url(server: Server, address: str) -> str:
    return f"{server.url}/preferences?token={tokens.sign(SECRET_BYTES, 'preferences', address)}"


# --- double opt-in ---------------------------------------------------------------------------


def test_double_opt_in_flow(server: Server) -> None:
    address = "Mina.Kim@Example.com"
    with server.client() as client:
        form = client.get("/subscribe")
        assert form.status_code == 200
        assert "text/html" in form.headers["content-type"]
        assert 'name="categories" value="kpop-interviews"' in form.text
        assert "kcrush_csrf" in form.headers["set-cookie"]
        answer = client.post(
            "/subscribe",
            data={
                "email": address,
                "name": "Mina",
                "categories": ["kpop-interviews"],
                "csrf_token": csrf_from(form.text),
            },
        )
        assert answer.status_code == 200, answer.text
        assert "Check your inbox" in answer.text
        pending = server.subscriber(address)
        assert pending is not None
        assert (pending.status, pending.name, pending.categories) == (
            "pending",
            "Mina",
            ("kpop-interviews",),
        )

        mail = server.smtp.wait_for("Mina.Kim@example.com")[0]
        assert mail["Subject"] == "Confirm your subscription to KCrush Weekly"
        assert mail["From"] == "KCrush Weekly <newsletter@kcrush.com>"
        assert mail["To"] == "Mina <Mina.Kim@example.com>"
        assert mail["Auto-Submitted"] == "auto-replied"
        assert mail["Message-ID"].endswith("@www.kcrush.com>")
        link = link_in(mail, "confirm")
        assert link.startswith(f"{server.url}/confirm?token=")
        # Until the link is followed the address stays pending (gets nothing else).
        assert server.subscriber(address).status == "pending"  # type: ignore[union-attr]

        done = client.get(link)
        assert done.status_code == 200
        assert "subscribed" in done.text and "Mina.Kim@example.com" in done.text
        assert server.subscriber(address).status == "active"  # type: ignore[union-attr]
        # Idempotent: a second click (or a mail scanner's) changes nothing and says so.
        again = client.get(link, headers={"Accept": "application/json"})
        assert again.status_code == 200
        assert again.json() == {"status": "active", "email": "Mina.Kim@example.com"}
    assert len(server.smtp.to("Mina.Kim@example.com")) == 1


def test_the_answer_does_not_tell_whether_the_address_was_known(server: Server) -> None:
    known = confirmed(server, "known@example.com")
    with server.client() as client:
        new = subscribe(client, "fresh@example.com")
        old = subscribe(client, "known@example.com")
    assert new.status_code == old.status_code == 200
    assert new.text == old.text  # byte for byte (no token on this page)
    assert new.headers.get("content-length") == old.headers.get("content-length")
    # The known, active address stays active: it is told by mail, with its preferences link.
    assert server.subscriber("known@example.com") == known
    notice = server.smtp.wait_for("known@example.com", count=2)[1]
    assert notice["Subject"] == "You are already subscribed to KCrush Weekly"
    assert "/preferences?token=" in body_of(notice) and "/confirm" not in body_of(notice)
    assert server.subscriber("fresh@example.com").status == "pending"  # type: ignore[union-attr]


def test_a_korean_name_in_the_mail(server: Server) -> None:
    with server.client() as client:
        assert subscribe(client, "minah@example.com", name="김민아").status_code == 200
    mail = server.smtp.wait_for("minah@example.com")[0]
    assert mail["To"] == "김민아 <minah@example.com>"  # RFC 2047-encoded on the wire
    assert body_of(mail).startswith("Hello 김민아,")
    assert server.subscriber("minah@example.com").name == "김민아"  # type: ignore[union-attr]


def test_json_clients(server: Server) -> None:
    with server.client(headers={"Accept": "application/json"}) as client:
        form = client.get("/subscribe")
        assert form.status_code == 200
        body = form.json()
        assert [c["slug"] for c in body["categories"]] == ["kpop-articles", "kpop-interviews"]
        answer = client.post(
            "/subscribe", data={"email": "json@example.com", "csrf_token": body["csrf_token"]}
        )
        assert answer.status_code == 200
        assert answer.json()["status"] == "ok"
        bad = client.get("/confirm?token=nonsense")
        assert bad.status_code == 400 and "error" in bad.json()
        health = client.get("/health")
        assert health.json() == {
            "status": "ok",
            "store": "ok",
            "schema_version": health.json()["schema_version"],
        }


def test_resubscribing_after_unsubscribe_needs_a_new_confirmation(server: Server) -> None:
    address = "comeback@example.com"
    confirmed(server, address)
    with server.client() as client:
        first_link = link_in(server.smtp.to(address)[0], "confirm")
        r = client.post(unsubscribe_url(server, address), data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200
        assert server.subscriber(address).status == "unsubscribed"  # type: ignore[union-attr]
        # The old confirm link does not bring the address back.
        assert client.get(first_link).status_code == 400
        assert server.subscriber(address).status == "unsubscribed"  # type: ignore[union-attr]
        # Subscribing again: pending, and a new confirmation mail.
        assert subscribe(client, address).status_code == 200
        assert server.subscriber(address).status == "pending"  # type: ignore[union-attr]
        mail = server.smtp.wait_for(address, count=2)[1]
        assert client.get(link_in(mail, "confirm")).status_code == 200
    assert server.subscriber(address).status == "active"  # type: ignore[union-attr]


# --- unsubscribe -------------------------------------------------------------------------------


def test_one_click_unsubscribe_with_exactly_what_a_mail_provider_sends(server: Server) -> None:
    address = "oneclick@example.com"
    confirmed(server, address)
    url = unsubscribe_url(server, address)
    # RFC 8058 3.1 / what Gmail and Yahoo send: a bare POST, this body, no cookie, no token.
    raw = httpx.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert raw.status_code == 200
    assert "set-cookie" not in raw.headers
    assert server.subscriber(address).status == "unsubscribed"  # type: ignore[union-attr]
    # A second one (providers retry) is still a 200 and changes nothing more.
    assert (
        httpx.post(
            url,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ).status_code
        == 200
    )


def test_one_click_unsubscribe_as_multipart(server: Server) -> None:
    address = "multipart@example.com"
    confirmed(server, address)
    r = httpx.post(
        unsubscribe_url(server, address), files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert r.status_code == 200
    assert server.subscriber(address).status == "unsubscribed"  # type: ignore[union-attr]


def test_get_on_the_unsubscribe_link_changes_nothing(server: Server) -> None:
    address = "scanned@example.com"
    before = confirmed(server, address)
    url = unsubscribe_url(server, address)
    with server.client() as client:
        for _ in range(3):  # a mail scanner, a preview, the person
            page = client.get(url)
            assert page.status_code == 200
            assert "<button" in page.text and "scanned@example.com" in page.text
        assert server.subscriber(address) == before
        # The button on the page: a form POST with its CSRF token.
        r = client.post(
            "/unsubscribe",
            data={"token": url.split("token=")[1], "csrf_token": csrf_from(page.text)},
        )
        assert r.status_code == 200 and "no more newsletters" in r.text
    assert server.subscriber(address).status == "unsubscribed"  # type: ignore[union-attr]


def test_the_unsubscribe_button_needs_its_csrf_token(server: Server) -> None:
    address = "csrf@example.com"
    before = confirmed(server, address)
    url = unsubscribe_url(server, address)
    with server.client() as client:
        page = client.get(url)
        token = url.split("token=")[1]
        assert client.post("/unsubscribe", data={"token": token}).status_code == 403
        forged = client.post("/unsubscribe", data={"token": token, "csrf_token": "1.abc"})
        assert forged.status_code == 403
        # Another browser's cookie with this page's token: refused too.
        other = httpx.post(
            f"{server.url}/unsubscribe",
            data={"token": token, "csrf_token": csrf_from(page.text)},
            cookies={"kcrush_csrf": "A" * 32},
        )
        assert other.status_code == 403
    assert server.subscriber(address) == before


# --- bad tokens ----------------------------------------------------------------------------


def _tamper(token: str) -> str:
    payload, mac = token.split(".")
    flipped = "A" if mac[3] != "A" else "B"
    return f"{payload}.{mac[:3]}{flipped}{mac[4:]}"


def test_tampered_expired_and_other_address_tokens_are_refused(server: Server) -> None:
    victim = confirmed(server, "victim@example.com")
    attacker = "attacker@example.com"
    with server.client() as client:
        good = tokens.sign(SECRET_BYTES, "unsubscribe", victim.email)
        payload = good.split(".")[0]
        attacker_mac = tokens.sign(SECRET_BYTES, "unsubscribe", attacker).split(".")[1]
        bad_tokens = {
            "tampered": _tamper(good),
            "another address's signature": f"{payload}.{attacker_mac}",
            "another secret": tokens.sign(b"not-the-secret-at-all!!", "unsubscribe", victim.email),
            "garbage": "x" * 50,
            "empty": "",
        }
        for label, token in bad_tokens.items():
            for method, path in (
                ("GET", "unsubscribe"),
                ("POST", "unsubscribe"),
                ("GET", "preferences"),
                ("GET", "confirm"),
            ):
                data = {"List-Unsubscribe": "One-Click"} if method == "POST" else None
                r = client.request(method, f"/{path}?token={token}", data=data)
                assert r.status_code == 400, (label, method, path, r.status_code)
                # The same address's token, signed for another of the three links.
                other = "preferences" if path == "unsubscribe" else "unsubscribe"
                wrong = tokens.sign(SECRET_BYTES, other, victim.email)
                r = client.request(method, f"/{path}?token={wrong}", data=data)
                assert r.status_code == 400, (label, method, path, r.status_code)
                assert "not valid" in r.text or "expired" in r.text, (label, r.text)
        expired = tokens.sign(
            SECRET_BYTES,
            "confirm",
            "late@example.com",
            expires=datetime.now(UTC) - timedelta(minutes=1),
        )
        assert subscribe(client, "late@example.com").status_code == 200
        r = client.get(f"/confirm?token={expired}")
        assert r.status_code == 400 and "expired" in r.text
        assert server.subscriber("late@example.com").status == "pending"  # type: ignore[union-attr]
        # Query and form naming two different tokens: refused, not one of them picked.
        r = client.post(
            f"/unsubscribe?token={good}",
            data={
                "token": tokens.sign(SECRET_BYTES, "unsubscribe", attacker),
                "List-Unsubscribe": "One-Click",
            },
        )
        assert r.status_code == 400
    assert server.subscriber(victim.email) == victim


# --- preferences ---------------------------------------------------------------------------


def test_preferences_categories_pause_resume_unsubscribe(server: Server) -> None:
    address = "prefs@example.com"
    confirmed(server, address)
    url = preferences_url(server, address)
    with server.client() as client:
        page = client.get(url)
        assert page.status_code == 200
        assert page.text.count("checked") == 2  # None = every category

        def act(action: str, **extra: object) -> httpx.Response:
            page = client.get(url)
            return client.post(
                url, data={"action": action, "csrf_token": csrf_from(page.text), **extra}
            )

        r = act("save", categories=["kpop-articles"])
        assert r.status_code == 200 and "saved" in r.text
        assert server.subscriber(address).categories == ("kpop-articles",)  # type: ignore[union-attr]
        r = act("save", categories=["kpop-articles", "kpop-interviews"])
        assert server.subscriber(address).categories is None  # type: ignore[union-attr]
        r = act("save", categories=["../../etc/passwd"])
        assert r.status_code == 422
        assert server.subscriber(address).categories is None  # type: ignore[union-attr]
        assert "paused" in act("pause").text
        assert server.subscriber(address).status == "paused"  # type: ignore[union-attr]
        assert act("resume").status_code == 200
        assert server.subscriber(address).status == "active"  # type: ignore[union-attr]
        # Without the form's token nothing happens.
        assert client.post(url, data={"action": "pause"}).status_code == 403
        assert server.subscriber(address).status == "active"  # type: ignore[union-attr]
        kept = csrf_from(client.get(url).text)  # the page after this has no form
        assert "no more newsletters" in act("unsubscribe").text
        assert server.subscriber(address).status == "unsubscribed"  # type: ignore[union-attr]
        # Unsubscribed: resuming from the preferences page is refused (confirm again).
        r = client.post(url, data={"action": "resume", "csrf_token": kept})
        assert "Nothing was changed" in r.text
        assert server.subscriber(address).status == "unsubscribed"  # type: ignore[union-attr]


# --- abuse ---------------------------------------------------------------------------------


def test_honeypot_gets_the_same_answer_and_nothing_happens(server: Server) -> None:
    with server.client() as client:
        bot = subscribe(client, "bot@example.com", website="http://spam.example")
        human = subscribe(client, "human@example.com")
    assert bot.status_code == human.status_code == 200 and bot.text == human.text
    assert server.subscriber("bot@example.com") is None
    server.smtp.wait_for("human@example.com")
    assert server.smtp.to("bot@example.com") == []


def test_subscribe_without_csrf_shows_the_form_again_filled_in(server: Server) -> None:
    with server.client() as client:
        r = client.post("/subscribe", data={"email": "embedded@example.com", "name": "Jin"})
        assert r.status_code == 403
        assert 'value="embedded@example.com"' in r.text and "once more" in r.text
        assert server.subscriber("embedded@example.com") is None
        # The second press (the page set the cookie and holds a token) goes through.
        r = client.post(
            "/subscribe",
            data={"email": "embedded@example.com", "name": "Jin", "csrf_token": csrf_from(r.text)},
        )
        assert r.status_code == 200
    assert server.subscriber("embedded@example.com").status == "pending"  # type: ignore[union-attr]


def test_invalid_input_is_refused_with_the_form(server: Server) -> None:
    with server.client() as client:
        for address in ("not-an-address", "a@b", "x@example.com\r\nBcc: all@example.com"):
            r = subscribe(client, address)
            assert r.status_code == 422, address
            assert 'class="error"' in r.text
        r = subscribe(client, "nl@example.com", name="Evil\nBcc: x@example.com")
        assert r.status_code == 422
        r = subscribe(client, "cat@example.com", categories=["no-such-category"])
        assert r.status_code == 422
        # Escaped, not interpreted.
        r = subscribe(client, "<script>alert(1)</script>@example.com")
        assert "<script>alert" not in r.text and "&lt;script&gt;" in r.text
    assert server.subscriber("cat@example.com") is None


def test_request_size_limits(server: Server) -> None:
    with server.client() as client:
        page = client.get("/subscribe")
        big = client.post(
            "/subscribe",
            data={
                "email": "big@example.com",
                "name": "x" * 20000,
                "csrf_token": csrf_from(page.text),
            },
        )
        assert big.status_code == 413

        # A lying Content-Length header is caught as the body streams in.
        def chunks() -> Iterator[bytes]:
            for _ in range(40):
                yield b"a" * 1024

        streamed = client.post(
            "/subscribe",
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert streamed.status_code == 413
        long_name = subscribe(client, "long@example.com", name="x" * 300)
        assert long_name.status_code in (400, 422)
        assert (
            client.post(
                "/subscribe", content=b"{}", headers={"Content-Type": "application/json"}
            ).status_code
            == 415
        )
    assert server.subscriber("big@example.com") is None


def test_no_redirects_and_security_headers(server: Server) -> None:
    with server.client() as client:
        for path in (
            "/subscribe?next=https://evil.example",
            "/confirm?token=x&next=//evil",
            "/unsubscribe?token=x&redirect=https://evil.example",
            "/nowhere",
        ):
            r = client.get(path, follow_redirects=False)
            assert not r.is_redirect and "location" not in r.headers
            assert r.headers["referrer-policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert client.get("/nowhere").status_code == 404
        assert client.put("/subscribe").status_code == 405


def test_health(server: Server) -> None:
    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["store"] == "ok"
    assert r.json()["schema_version"] >= 2


# --- servers of their own --------------------------------------------------------------------


def test_rate_limit_per_client_and_per_address(tmp_path: Path, smtp: SmtpSink) -> None:
    server = start_server(
        tmp_path,
        smtp,
        extra='rate_limit_client = 4\nrate_limit_address = 2\nrate_limit_window = "1h"',
    )
    try:
        with server.client() as client:
            assert subscribe(client, "rl@example.com").status_code == 200
            assert subscribe(client, "RL@example.com").status_code == 200
            # The same mailbox (any spelling): the same answer as always, but no third mail;
            # the owner is never told to wait because of someone else's tries.
            third = subscribe(client, "rl+tag@example.com")
            assert third.status_code == 200
            assert subscribe(client, "other@example.com").status_code == 200
            over = subscribe(client, "yet-another@example.com")  # the client's 5th
            assert over.status_code == 429 and "Too many attempts" in over.text
            assert server.subscriber("yet-another@example.com") is None
            # Other endpoints are not limited by it.
            assert client.get("/health").status_code == 200
        assert len(server.smtp.wait_for("rl@example.com", count=2)) == 2
        time.sleep(0.5)  # a third mail would have arrived by now
        assert len(server.smtp.to("rl@example.com") + server.smtp.to("rl+tag@example.com")) == 2
    finally:
        server.stop()


def test_proxy_headers_only_from_a_trusted_proxy(tmp_path: Path, smtp: SmtpSink) -> None:
    untrusted = start_server(tmp_path / "a", smtp, extra="rate_limit_client = 1")
    try:
        r1 = _post_as(untrusted, "p1@example.com", "203.0.113.1")
        r2 = _post_as(untrusted, "p2@example.com", "203.0.113.2")
        # X-Forwarded-For from an untrusted peer is ignored: one client, limit 1.
        assert (r1, r2) == (200, 429)
    finally:
        untrusted.stop()
    trusted = start_server(
        tmp_path / "b", smtp, extra='rate_limit_client = 1\ntrusted_proxies = ["127.0.0.1"]'
    )
    try:
        r1 = _post_as(trusted, "p3@example.com", "203.0.113.1")
        r2 = _post_as(trusted, "p4@example.com", "203.0.113.2")
        r3 = _post_as(trusted, "p5@example.com", "203.0.113.2")
        assert (r1, r2, r3) == (200, 200, 429)
    finally:
        trusted.stop()


def _post_as(server: Server, address: str, client_ip: str) -> int:
    with server.client(headers={"X-Forwarded-For": client_ip}) as client:
        page = client.get("/subscribe")
        return client.post(
            "/subscribe", data={"email": address, "csrf_token": csrf_from(page.text)}
        ).status_code


def test_behind_a_proxy_at_a_path_prefix(tmp_path: Path, smtp: SmtpSink) -> None:
    # nginx strips /newsletter (proxy_pass http://127.0.0.1:PORT/;) and uvicorn is told
    # the prefix: pages link, post and set cookies under it; mails link to base_url.
    server = start_server(tmp_path / "p", smtp, root_path="/newsletter")
    try:
        with server.client() as client:
            page = client.get("/subscribe")
            assert page.status_code == 200
            assert 'action="/newsletter/subscribe"' in page.text
            assert "Path=/newsletter" in page.headers["set-cookie"]
            # The browser sends it to /newsletter/...; this client talks to the app as
            # nginx does, under /, so it is given the cookie by hand.
            client.cookies.set("kcrush_csrf", page.cookies["kcrush_csrf"])
            r = client.post(
                "/subscribe",
                data={"email": "prefix@example.com", "csrf_token": csrf_from(page.text)},
            )
            assert r.status_code == 200
            assert 'href="/newsletter/subscribe"' in r.text
            link = link_in(server.smtp.wait_for("prefix@example.com")[0], "confirm")
            assert link.startswith(f"{server.url}/newsletter/confirm?token=")
            # What nginx forwards for that link: the path without the prefix.
            done = client.get(link.replace("/newsletter", "", 1))
            assert done.status_code == 200
            assert re.search(r'href="/newsletter/preferences\?token=', done.text)
        assert server.subscriber("prefix@example.com").status == "active"  # type: ignore[union-attr]
    finally:
        server.stop()


def test_editors_override_templates(tmp_path: Path, smtp: SmtpSink) -> None:
    own = tmp_path / "site" / "my-templates"
    own.mkdir(parents=True)
    (own / "subscribed.html").write_text(
        '{% extends "base.html" %}{% block content %}<p>Annyeong! Check your mail, '
        "{{ list_name }} reader.</p>{% endblock %}",
        encoding="utf-8",
    )
    (own / "confirm.txt").write_text(
        '{% set subject = "Please confirm, " ~ (subscriber.name or "friend") %}'
        "Click: {{ confirm_url }}\n",
        encoding="utf-8",
    )
    server = start_server(tmp_path / "site", smtp, extra='templates_dir = "my-templates"')
    try:
        with server.client() as client:
            r = subscribe(client, "override@example.com", name="Hana")
            assert r.status_code == 200
            assert "Annyeong! Check your mail, KCrush Weekly reader." in r.text
            assert "<header>" in r.text  # the built-in base.html still frames it
            # Pages not overridden are the built-in ones.
            assert "What would you like to read?" in client.get("/subscribe").text
        mail = server.smtp.wait_for("override@example.com")[0]
        assert mail["Subject"] == "Please confirm, Hana"
        assert link_in(mail, "confirm")
    finally:
        server.stop()
