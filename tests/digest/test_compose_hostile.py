"""Record text can never trigger the per-subscriber fill of the composer's slots."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

from kcrush_feeds.digest.compose import DigestComposer
from kcrush_feeds.digest.select import open_digest
from kcrush_feeds.model import Subscriber
from kcrush_feeds.records.importer import import_files
from kcrush_feeds.store.db import Store
from tests.support.project import Project

NOW = datetime.fromisoformat("2024-02-26T09:00:00-08:00")
# The markers the composer once used: any text could spell them.
OLD_MARKERS = "kcfslotemailx kcfslotunsubscribeurlx kcfslotpreferencesurlx kcfslotnamex"
HOSTILE = {
    "id": "hostile",
    "url": "https://www.kcrush.com/win/",
    "title": f"Win a prize: {OLD_MARKERS}",
    "published": "2024-02-25T10:00:00",
    "categories": ["K-Pop Articles"],
    "summary": '<p>Claim it <a href="https://evil.example/c?u=kcfslotemailx&amp;'
    't=kcfslotunsubscribeurlx&amp;p=kcfslotpreferencesurlx">here</a>.</p>',
}


def test_slot_markers_in_record_text_are_shown_as_written(
    project: Project, write_jsonl: Callable[..., Path]
) -> None:
    path = write_jsonl("hostile.jsonl", HOSTILE)
    config = project.config
    with Store.open(config.database_path) as store:
        assert import_files(store, [str(path)], tz=config.site.tz, now=NOW).ok
        digest = open_digest(store, config, NOW)
    assert digest is not None
    victim = Subscriber(5, "victim@example.com", "Victim", "active", None)
    composer = DigestComposer(config, digest, now=NOW)
    message = composer.compose(victim)
    assert message is not None
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    token = composer.links(victim)["unsubscribe_token"]
    for kind in ("plain", "html"):
        body = parsed.get_body((kind,)).get_content()  # type: ignore[union-attr]
        assert OLD_MARKERS in " ".join(body.split()), kind  # the title, as written
        if kind == "plain":
            continue  # the excerpt is text there: the link is in the HTML part
        evil = body[body.index("evil.example") :][:200]
        assert "victim" not in evil and token not in evil, (kind, evil)
        assert "kcfslotemailx" in evil, (kind, evil)
    rendered = composer.render(victim)
    assert rendered is not None and OLD_MARKERS in rendered.html
    assert "victim%40example.com" not in rendered.html.split("evil.example", 1)[1][:200]


def test_the_slot_texts_differ_from_one_process_to_the_next() -> None:
    """Drawn at random when the composer is loaded: nothing stored earlier can know them."""
    code = "from kcrush_feeds.digest.compose import _SLOT_TEXT; print(_SLOT_TEXT['email'])"
    seen = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(seen) == 2 and all(s.startswith("kcfslotemail") for s in seen)
