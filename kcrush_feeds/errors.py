"""One error hierarchy for the whole tool.

Every error carries a message meant for the person at the terminal and the exit
status the CLI should end with (README.md, "Exit status": 0 done, 1 failed, 2 usage or config
error, 75 deliveries deferred). The library raises these; only ``cli`` turns them
into output and exit codes.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75  # sysexits.h EX_TEMPFAIL: a later run will retry


class KcrushError(Exception):
    """Base of every error kcrush-feeds reports to its user."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


class ConfigError(KcrushError, ValueError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = EXIT_USAGE


class UsageError(KcrushError, ValueError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = EXIT_USAGE


class InputError(KcrushError, ValueError):
    """An input file or source cannot be read on (not one bad record: see RecordError)."""

    def __init__(
        self, source: str, reason: str, *, line: int | None = None, hint: str | None = None
    ) -> None:
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {reason}", hint=hint)
        self.source = source
        self.line = line
        self.reason = reason


class RecordError(KcrushError, ValueError):
    """One record is invalid. ``field`` names the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class StoreError(KcrushError, RuntimeError):
    """The SQLite store cannot be opened, migrated or written."""


class BusyError(KcrushError, RuntimeError):
    """Another kcrush-feeds process holds the lock for this work."""


class FeedError(KcrushError, RuntimeError):
    """Feeds cannot be built as configured (for example two feeds would share a file)."""


class DeliveryError(KcrushError, RuntimeError):
    """Sending failed as a whole (the SMTP server is unreachable, authentication failed)."""


class DeferredError(KcrushError, RuntimeError):
    """Some deliveries hit temporary failures; a later run will retry them."""

    exit_code = EXIT_TEMPFAIL
