"""10,000 requests of mixed kinds against a real ``serve``, from several concurrent clients,
with no error and no lost update: afterwards the store holds exactly what each client's
last change asked for, and every subscriber got exactly one confirmation mail."""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from kcrush_feeds import tokens
from kcrush_feeds.subscriptions import subscribers
from tests.support.serve import SECRET, Server, SmtpSink, start_server

WORKERS = 8
ADDRESSES = 1000  # ten requests each: 10,000 in all
TIME_LIMIT = 90.0  # seconds for the whole loop (it takes well under half on two cores)
CATEGORY_CHOICES: list[tuple[list[str], tuple[str, ...] | None]] = [
    (["kpop-articles"], ("kpop-articles",)),
    (["kpop-interviews"], ("kpop-interviews",)),
    (["kpop-articles", "kpop-interviews"], None),
]


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@dataclass
class Expected:
    status: str
    categories: tuple[str, ...] | None


class Worker:
    """One client (its own connection pool and cookie jar) running its addresses' scripts."""

    def __init__(self, server: Server, number: int, addresses: list[str], as_json: bool) -> None:
        self.server = server
        self.number = number
        self.addresses = addresses
        self.as_json = as_json
        self.rng = random.Random(number)
        self.expected: dict[str, Expected] = {}
        self.requests = 0
        self.errors: list[str] = []
        self.client = httpx.AsyncClient(
            base_url=server.url,
            timeout=30.0,
            headers={"Accept": "application/json"} if as_json else {},
        )

    def csrf(self, response: httpx.Response) -> str:
        if self.as_json:
            return str(response.json()["csrf_token"])
        match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
        assert match, response.text
        return match.group(1)

    async def call(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        self.requests += 1
        response = await self.client.request(method, url, **kwargs)  # type: ignore[arg-type]
        if response.status_code != 200:
            self.errors.append(f"{method} {url}: {response.status_code} {response.text[:200]}")
        return response

    async def run(self) -> None:
        async with self.client:
            for address in self.addresses:
                await self.script(address)

    async def script(self, address: str) -> None:
        secret = SECRET.encode()
        expires = datetime.now(UTC) + timedelta(days=1)
        confirm = f"/confirm?token={tokens.sign(secret, 'confirm', address, expires=expires)}"
        preferences = f"/preferences?token={tokens.sign(secret, 'preferences', address)}"
        unsubscribe = f"/unsubscribe?token={tokens.sign(secret, 'unsubscribe', address)}"
        form = await self.call("GET", "/subscribe")  # 1
        await self.call(
            "POST",
            "/subscribe",
            data={  # 2
                "email": address,
                "name": f"Reader {address[:12]}",
                "csrf_token": self.csrf(form),
            },
        )
        await self.call("GET", confirm)  # 3
        await self.call("GET", "/health")  # 4
        page = await self.call("GET", preferences)  # 5
        boxes, categories = self.rng.choice(CATEGORY_CHOICES)
        page = await self.call(
            "POST",
            preferences,
            data={  # 6
                "action": "save",
                "categories": boxes,
                "csrf_token": self.csrf(page),
            },
        )
        pause = self.rng.random() < 0.5
        if pause:
            page = await self.call(
                "POST",
                preferences,
                data={  # 7
                    "action": "pause",
                    "csrf_token": self.csrf(page),
                },
            )
        else:
            await self.call("GET", unsubscribe)  # 7: a scanner following the link
        await self.call("GET", unsubscribe)  # 8: changes nothing
        if pause and self.rng.random() < 0.5:
            await self.call(
                "POST",
                preferences,
                data={  # 9
                    "action": "resume",
                    "csrf_token": self.csrf(page),
                },
            )
            status = "active"
        else:
            await self.call("GET", confirm)  # 9: idempotent
            status = "paused" if pause else "active"
        if self.rng.random() < 0.3:
            await self.call(
                "POST",
                unsubscribe,
                content=b"List-Unsubscribe=One-Click",  # 10
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            status = "unsubscribed"
        else:
            await self.call("GET", "/health")  # 10
        self.expected[address] = Expected(status, categories)


@pytest.mark.slow
def test_ten_thousand_mixed_requests_lose_nothing(tmp_path: Path, smtp: SmtpSink) -> None:
    server = start_server(
        tmp_path, smtp, extra="rate_limit_client = 100000\nrate_limit_address = 100"
    )
    try:
        addresses = [f"load-{n:04d}@example.com" for n in range(ADDRESSES)]
        workers = [
            Worker(server, w, addresses[w::WORKERS], as_json=w % 2 == 1) for w in range(WORKERS)
        ]

        async def run_all() -> None:
            await asyncio.wait_for(asyncio.gather(*(w.run() for w in workers)), TIME_LIMIT)

        started = time.monotonic()
        asyncio.run(run_all())
        elapsed = time.monotonic() - started
        requests = sum(w.requests for w in workers)
        errors = [e for w in workers for e in w.errors]
        assert requests == 10_000
        assert errors == [], errors[:5]
        cpu = ""
        stat = Path(f"/proc/{server.process.pid}/stat")
        if stat.exists():  # Linux: how much of the time the server itself was busy
            fields = stat.read_text().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            cpu = f", server CPU {ticks / os.sysconf('SC_CLK_TCK'):.1f}s"
        print(f"\n{requests} requests in {elapsed:.1f}s ({requests / elapsed:.0f}/s{cpu})")

        expected = {a: e for w in workers for a, e in w.expected.items()}
        with server.store() as store:
            found = {
                s.email: s
                for s in subscribers.iter_subscribers(store)
                if s.email.startswith("load-")
            }
        assert sorted(found) == sorted(expected)
        wrong = [
            (a, found[a].status, found[a].categories, e)
            for a, e in expected.items()
            if (found[a].status, found[a].categories) != (e.status, e.categories)
        ]
        assert wrong == [], wrong[:5]
        by_status = {
            s: sum(1 for e in expected.values() if e.status == s)
            for s in ("active", "paused", "unsubscribed")
        }
        assert all(by_status.values()), by_status  # the mix really had all three
        # One confirmation mail per subscribe, none lost (sent after each answer).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            caught = sum(1 for c in smtp.messages if c.recipients[0].startswith("load-"))
            if caught >= ADDRESSES:
                break
            time.sleep(0.1)
        assert caught == ADDRESSES
        assert "Traceback" not in server.log()
    finally:
        server.stop()
