"""The pieces of ``serve`` that need no server: the store transitions of the subscribe form,
the sliding-window limiter and the CSRF tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kcrush_feeds.store.db import Store
from kcrush_feeds.subscriptions import subscribers
from kcrush_feeds.web import guards
from kcrush_feeds.web.guards import Csrf, SlidingWindow
from tests.support.project import Project

NOW = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)


def test_subscribe_pending_transitions(project: Project) -> None:
    with Store.open(project.config.database_path) as store:
        new, before = subscribers.subscribe_pending(store, "A@Example.com", name="A", now=NOW)
        assert (new.status, before) == ("pending", None)
        again, before = subscribers.subscribe_pending(
            store, "a@example.com", categories=("kpop-articles",), now=NOW
        )
        assert (again.id, again.status, before, again.name) == (new.id, "pending", "pending", "A")
        assert again.categories == ("kpop-articles",)
        subscribers.update_subscriber(store, "a@example.com", now=NOW, status="active")
        kept, before = subscribers.subscribe_pending(store, "a@example.com", name="B", now=NOW)
        assert (kept.status, before, kept.name) == ("active", "active", "A")  # untouched
        subscribers.update_subscriber(store, "a@example.com", now=NOW, status="unsubscribed")
        back, before = subscribers.subscribe_pending(store, "a@example.com", now=NOW)
        assert (back.status, before) == ("pending", "unsubscribed")  # must confirm again
        assert subscribers.get_subscriber(store, "a@example.com") == back


def test_update_only_from_leaves_other_states_alone(project: Project) -> None:
    with Store.open(project.config.database_path) as store:
        subscribers.add_subscriber(store, "u@example.com", status="unsubscribed", now=NOW)
        same = subscribers.update_subscriber(
            store, "u@example.com", now=NOW, status="active", only_from=("pending",)
        )
        assert same.status == "unsubscribed"
        changed = subscribers.update_subscriber(
            store, "u@example.com", now=NOW, status="pending", only_from=("unsubscribed",)
        )
        assert changed.status == "pending"


def test_sliding_window() -> None:
    clock = [0.0]
    window = SlidingWindow(2, 60, clock=lambda: clock[0], max_keys=3)
    assert window.hit("a") is None and window.hit("a") is None
    assert window.hit("a") == 60.0
    clock[0] = 30
    assert window.hit("a") == 30.0  # still both in the window: no partial credit
    clock[0] = 60.5
    assert window.hit("a") is None  # the oldest slid out
    for key in ("b", "c", "d"):
        window.hit(key)
    assert "a" not in window._hits  # bounded: the least recently used key went


def test_csrf_tokens() -> None:
    csrf = Csrf(b"0123456789abcdef-secret", ttl=3600)
    nonce = csrf.new_nonce()
    assert csrf.valid_nonce(nonce)
    token = csrf.token(nonce, 1000)
    assert csrf.check(nonce, token, 1000 + 3599)
    assert not csrf.check(nonce, token, 1000 + 3601)  # expired
    assert not csrf.check(csrf.new_nonce(), token, 1001)  # another browser's cookie
    assert not csrf.check(nonce, token.replace(".", ".x"), 1001)
    assert not csrf.check(None, token, 1001)
    assert not Csrf(b"another-secret-0123456").check(nonce, token, 1001)
    # A cookie of the attacker's making (right shape, no valid signature) is refused.
    planted = "A" * 32 + "." + "B" * 16
    assert not csrf.valid_nonce(planted)
    assert not csrf.check(planted, csrf.token(planted, 1000), 1001)
    assert not csrf.valid_nonce("A" * 32)  # the old, unsigned shape


def test_serve_refuses_to_start_without_what_it_needs(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = project.run("serve", "--port", "0")
    assert result.exit_code == 2
    assert "[smtp]: the section is missing" in result.output
    project.append_config('[smtp]\nhost = "127.0.0.1"\ntls = "none"\n')
    result = project.run("serve", "--root-path", "newsletter/")
    assert result.exit_code == 2 and "--root-path" in result.output
    monkeypatch.delenv("KCRUSH_TEST_SECRET")
    result = project.run("serve")
    assert result.exit_code == 2
    assert "KCRUSH_TEST_SECRET" in result.output and "hint" in result.output


def test_mailbox_key_folds_case_and_plus_tags_only() -> None:
    assert guards.mailbox_key("Victim+News@Example.COM") == "victim@example.com"
    assert guards.mailbox_key("victim@example.com") == "victim@example.com"
    assert guards.mailbox_key("a+b+c@x.org") == "a@x.org"
    assert guards.mailbox_key("+tag@x.org") == "+tag@x.org"
    assert guards.mailbox_key("first.last@x.org") == "first.last@x.org"


def test_a_mailbox_gets_at_most_so_many_confirmation_mails_a_day() -> None:
    now = [0.0]
    limit = guards.MailboxLimit(3, 3600, per_day=5, clock=lambda: now[0])
    sent = 0
    for hour in range(48):  # two days, one try every 10 minutes, from anyone
        for minute in range(0, 60, 10):
            now[0] = hour * 3600 + minute * 60
            sent += limit.allow(f"Victim+{hour}.{minute}@example.com")
    assert sent == 10  # 5 a day, though the hourly limit alone would allow 3 an hour
    assert limit.allow("someone.else@example.com")
