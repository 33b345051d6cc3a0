"""WebSub (W3C Recommendation): tell the hub which feeds changed.

After a build, one ``POST hub.mode=publish&hub.url=TOPIC`` per changed feed, with httpx and
a short timeout. A hub that fails (an error status, a timeout, a refused connection) is a
warning, never a failed build: the topics it missed are remembered in
``.websub-pending.json`` next to the feeds' build state, and pinged again (with whatever
else changed) by the next build. Once the hub cannot be reached, the remaining topics are
not tried: each would wait for the same timeout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kcrush_feeds import __version__
from kcrush_feeds.feeds.files import write_atomic

PENDING_NAME = ".websub-pending.json"
TIMEOUT = 5.0  # seconds per ping: a build must not hang on a slow hub


@dataclass(slots=True)
class PingReport:
    """What ``ping_hub`` did: topics pinged, and the ones left for the next build."""

    hub: str
    pinged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (topic, why)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        text = f"websub: {len(self.pinged)} pinged"
        if self.failed:
            text += f", {len(self.failed)} failed (pinged again at the next build)"
        return text


def load_pending(path: Path) -> list[str]:
    """The topics an earlier build could not ping (none when the file is missing or bad)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    topics = data.get("pending") if isinstance(data, dict) else None
    return [t for t in topics if isinstance(t, str)] if isinstance(topics, list) else []


def _save_pending(path: Path, topics: list[str]) -> None:
    if not topics:
        if path.exists():
            path.unlink()
        return
    body = json.dumps({"pending": topics}, ensure_ascii=False, indent=1)
    write_atomic(path, body.encode("utf-8") + b"\n")


def ping_hub(
    hub: str,
    changed: list[str],
    pending_file: Path,
    *,
    timeout: float = TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> PingReport:
    """Ping ``hub`` for ``changed`` topics plus those pending from earlier builds, each once."""
    topics = list(dict.fromkeys([*load_pending(pending_file), *changed]))
    report = PingReport(hub)
    if not topics:
        return report
    headers = {"User-Agent": f"kcrush-feeds/{__version__} (WebSub publisher)"}
    with httpx.Client(timeout=timeout, headers=headers, transport=transport) as client:
        unreachable: str | None = None
        for topic in topics:
            if unreachable is not None:
                report.failed.append((topic, unreachable))
                continue
            try:
                response = client.post(hub, data={"hub.mode": "publish", "hub.url": topic})
            except httpx.HTTPError as e:
                unreachable = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                report.failed.append((topic, unreachable))
                continue
            if response.is_success:
                report.pinged.append(topic)
            else:
                report.failed.append((topic, f"HTTP {response.status_code}"))
    _save_pending(pending_file, [topic for topic, _ in report.failed])
    return report
