"""The work ``schedule`` runs: import + build, and send, against the configured store.

Plain functions and values (no click, no scheduler): ``schedule.service`` calls them from
its worker threads and logs the ``JobOutcome`` each returns.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from kcrush_feeds.config import Config
from kcrush_feeds.errors import EXIT_OK, EXIT_TEMPFAIL
from kcrush_feeds.model import DigestState
from kcrush_feeds.schedule.plan import DigestStatus, JobOutcome, Plan, Status
from kcrush_feeds.sources.configured import import_sources
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.digests import digest_state

log = logging.getLogger("kcrush_feeds.schedule")
SHOW_AT_MOST = 5  # rejected records logged per source and run; the summary has the count


class ConfiguredJobs:
    """The real job bodies; each run opens its own store connection (jobs run in threads)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def build(self, now: datetime, stop: threading.Event) -> JobOutcome:
        """Import the configured sources (one log line each), then build the feeds."""
        with Store.open(self.config.database_path) as store:
            if self.config.sources:
                # A failing source is reported and the others still run (import_sources);
                # the build goes ahead with what the store holds.
                for report in import_sources(self.config, store, now):
                    log.log(
                        logging.INFO if report.ok else logging.WARNING,
                        "import: %s: %s",
                        report.source.label,
                        report.summary(),
                    )
                    for problem in report.report.rejected[:SHOW_AT_MOST]:
                        log.warning("import: %s: %s", report.source.label, problem)
                if stop.is_set():
                    return JobOutcome("ok", "imported; the build is left for the next start")
            from kcrush_feeds.archive.publish import publish  # lazy, as in the build command

            built = publish(self.config, store, now)
            # Returned mail: the [bounces.imap] mailbox is read on every build tick.
            from kcrush_feeds.inbound.run import poll_configured

            poll_configured(self.config, store, now)
        if built.pings is not None:
            for topic, why in built.pings.failed:  # a warning: the next build pings again
                log.warning("websub: %s: %s: %s", built.pings.hub, topic, why)
        return JobOutcome("ok", built.summary())

    def send(self, now: datetime, stop: threading.Event) -> JobOutcome:
        """Send (or resume) this period's digest; the stored digest and the send lock decide
        whether anything is left to send (cron may have sent it already)."""
        from kcrush_feeds.delivery.send import send_digest  # lazy: aiosmtplib and the composer

        with Store.open(self.config.database_path) as store:
            report = send_digest(self.config, store, now, stop=stop)
        code = report.exit_status
        status: Status = (
            "ok" if code == EXIT_OK else "deferred" if code == EXIT_TEMPFAIL else "failed"
        )
        return JobOutcome(status, report.summary())


def digest_status(config: Config) -> DigestStatus:
    """What the store says about a period's digest (``store.digests.digest_state``)."""

    def state(period: str) -> DigestState:
        with Store.open(config.database_path) as store:
            return digest_state(store, period)

    return state


def check_ready(config: Config, plan: Plan) -> None:
    """Fail now (exit 2) on what the jobs would fail on at every run: the store, and the
    secrets the digest needs, rather than at the first digest."""
    Store.open(config.database_path).close()
    if plan.schedule is not None:
        config.require_smtp().password()
        if config.subscriptions is not None:
            config.subscriptions.secret()
