"""Read ``config.toml`` and validate it into frozen, typed objects before anything runs.

Every error names the file, the key path and what is wrong (``ConfigError``, exit 2).
Relative paths in the file are relative to the file itself, so a config works from any
working directory (cron starts in ``$HOME``). Secrets never live in the file: it names
the environment variable that holds them.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
from datetime import timedelta
from email.utils import formataddr, parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kcrush_feeds.errors import ConfigError

ENV_CONFIG = "KCRUSH_FEEDS_CONFIG"
MAX_CONFIG_BYTES = 1024 * 1024  # a config is a few KiB; more is not a config
DEFAULT_CONFIG = "config.toml"
FeedFormat = Literal["rss", "atom", "json"]
FEED_FORMATS: tuple[FeedFormat, ...] = ("rss", "atom", "json")

_DURATION_RE = re.compile(r"(\d+)\s*([wdhms])")
_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_DURATION = timedelta(days=3650)  # ten years: longer is a typo, and overflows timedelta
_SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


# --- value types -----------------------------------------------------------------------


def parse_duration(value: object) -> timedelta:
    """``"7d"``, ``"15m"``, ``"1h30m"``, ``"2w"`` or a number of seconds -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '15m', '1h' or '7d'")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value!r} is not a duration (a finite number of seconds, >= 0)")
        if value > MAX_DURATION.total_seconds():
            raise ValueError(f"{value!r} seconds is too long (at most {_show(MAX_DURATION)})")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as '15m', '1h' or '7d'")
    text = value.strip().lower()
    parts = _DURATION_RE.findall(text)
    if not parts or _DURATION_RE.sub("", text).strip():
        raise ValueError(f"{value!r} is not a duration such as '15m', '1h30m' or '7d'")
    seconds = 0
    for number, unit in parts:
        if len(number) > 12:  # more than any unit of MAX_DURATION; int() of it can be slow
            raise ValueError(f"{value!r} is too long (at most {_show(MAX_DURATION)})")
        seconds += int(number) * _UNIT_SECONDS[unit]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{value!r} is too long (at most {_show(MAX_DURATION)})")
    return timedelta(seconds=seconds)


def _show(duration: timedelta) -> str:
    """A duration as the config writes it: "30s", "15m", "7d"."""
    seconds = int(duration.total_seconds())
    if seconds and duration.total_seconds() == seconds:
        for unit in ("w", "d", "h", "m"):
            if seconds % _UNIT_SECONDS[unit] == 0:
                return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
        return f"{seconds}s"
    return f"{duration.total_seconds():g}s"


def duration_in(low: timedelta, high: timedelta) -> AfterValidator:
    """A check that a duration lies in ``[low, high]``, naming the range when it does not
    (a zero timeout or window would silently turn a feature off)."""

    def check(value: timedelta) -> timedelta:
        if not low <= value <= high:
            raise ValueError(
                f"{_show(value)} is out of range: between {_show(low)} and {_show(high)}"
            )
        return value

    return AfterValidator(check)


def check_absolute_url(value: str) -> str:
    """An absolute http(s) URL with a host, or ValueError saying what is missing."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    return value.strip()


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(
            f"{value!r} is not an IANA time zone (for example 'America/Los_Angeles')"
        ) from e
    return value


def check_email(value: str) -> str:
    """A syntactically valid address, normalised (no DNS lookups)."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise ValueError(f"{value!r} is not a valid e-mail address: {e}") from e


def _check_mailbox(value: str) -> str:
    """``"Name <addr@host>"`` or a bare address; the address part is validated."""
    name, addr = parseaddr(value)
    if not addr or "\n" in value or "\r" in value:
        raise ValueError(f"{value!r} is not an address such as 'KCrush <news@kcrush.com>'")
    try:
        address = check_email(addr)
    except ValueError as e:
        reason = str(e).split(": ", 1)[-1]
        raise ValueError(
            f"{value!r} is not an address such as 'KCrush <news@kcrush.com>': {reason}"
        ) from e
    return formataddr((name, address)) if name else address


def _check_slug(value: str) -> str:
    if not _SLUG_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a slug: use lowercase letters, digits and inner hyphens, "
            "at most 64 characters"
        )
    return value


def _check_language(value: str) -> str:
    if not _LANGUAGE_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a language tag such as 'en' or 'en-US'")
    return value


def _check_env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _check_proxy(value: str) -> str:
    """An IP address or network (``10.0.0.0/8``): never "*", which would let any client
    choose the address the rate limit counts."""
    try:
        # strict: "10.0.0.1/8" (host bits set) would silently match nothing in uvicorn.
        ipaddress.ip_network(value.strip())
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address or network such as '127.0.0.1' or '10.0.0.0/8'"
        ) from None
    return value.strip()


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
AbsoluteUrl = Annotated[str, AfterValidator(check_absolute_url)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Mailbox = Annotated[str, AfterValidator(_check_mailbox)]
Slug = Annotated[str, AfterValidator(_check_slug)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic takes true for 1: "items_per_feed = true" would mean one item.
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation in (int, float):
                raise ValueError(f"expected a number, got {str(value).lower()}")
        return value


# --- sections ----------------------------------------------------------------------------


class SiteConfig(_Section):
    title: NonEmpty
    url: AbsoluteUrl
    description: str = ""
    language: Annotated[str, AfterValidator(_check_language)] = "en"
    timezone: TimeZoneName = "UTC"
    image: AbsoluteUrl | None = None  # logo used by feeds and the email header

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class StorageConfig(_Section):
    database: Path = Path("kcrush-feeds.db")


class CategoryConfig(_Section):
    slug: Slug
    title: NonEmpty
    description: str = ""
    match: list[NonEmpty] = Field(default_factory=list)  # record categories it gathers

    @property
    def matches(self) -> tuple[str, ...]:
        """Record category names this feed gathers; by default its own title and slug."""
        return tuple(self.match) if self.match else (self.title, self.slug)


class FeedsConfig(_Section):
    output_dir: Path = Path("public/feeds")
    base_url: AbsoluteUrl
    formats: list[FeedFormat] = Field(default_factory=lambda: list(FEED_FORMATS), min_length=1)
    items_per_feed: int = Field(default=50, ge=1, le=1000)
    auto_categories: bool = True  # record categories nobody configured get a feed of their own
    all_title: str | None = None  # title of the "all" feed; default: the site title
    categories: list[CategoryConfig] = Field(default_factory=list)
    # WebSub (W3C): feeds name this hub, and ``build`` pings it for the feeds it changed.
    websub_hub: AbsoluteUrl | None = None
    templates_dir: Path | None = None  # overrides for the built-in templates/feeds pages

    @model_validator(mode="after")
    def _unique(self) -> FeedsConfig:
        seen: set[str] = set()
        for i, category in enumerate(self.categories):
            if category.slug in seen or category.slug == "all":
                raise ValueError(
                    f"categories[{i}].slug: {category.slug!r} is used twice "
                    "('all' is reserved for the feed of everything)"
                )
            seen.add(category.slug)
        if len(set(self.formats)) != len(self.formats):
            raise ValueError("formats: a format is listed twice")
        return self


class SectionConfig(_Section):
    title: NonEmpty
    categories: list[NonEmpty] = Field(min_length=1)  # feed slugs (or record category names)


class UtmConfig(_Section):
    """``[digest.utm]``: UTM parameters added to links to the site's own host."""

    source: NonEmpty = "newsletter"
    medium: NonEmpty = "email"
    campaign: NonEmpty = "{week}"  # ``{week}`` becomes the digest's week ("2026-W49")


class DigestConfig(_Section):
    schedule: str = "mon 09:00"
    first_window: Annotated[Duration, duration_in(timedelta(0), MAX_DURATION)] = timedelta(days=7)
    subject: str | None = None  # a Jinja template; default: templates/email/subject.txt
    templates_dir: Path | None = None  # overrides for the built-in templates/email
    from_addr: Mailbox = Field(alias="from")
    reply_to: Mailbox | None = None
    list_id: str | None = None  # default: "<site title> weekly <digest.{site host}>"
    max_items: int = Field(default=40, ge=1, le=500)  # per digest, newest first
    sections: list[SectionConfig] = Field(default_factory=list)
    # --- editors in the loop (docs/editors.md) ---
    approval: Literal["auto", "required"] = "auto"
    editors: list[Annotated[str, AfterValidator(check_email)]] = Field(default_factory=list)
    auto_approve_after: Duration | None = None  # with "required": approve by itself this late
    max_html_bytes: int = Field(default=100_000, ge=10_000)  # Gmail clips past ~102 KB
    utm: UtmConfig | None = None

    @model_validator(mode="after")
    def _approval(self) -> DigestConfig:
        if self.approval == "required" and not self.editors:
            raise ValueError('editors: approval = "required" needs at least one editor')
        return self

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from kcrush_feeds.crontab import parse_schedule  # local: only this validator needs it

        parse_schedule(value)
        return value


class DkimConfig(_Section):
    """``[smtp.dkim]``: sign every message (when the relay does not)."""

    domain: NonEmpty
    selector: NonEmpty
    key_file: Path  # PEM, PKCS#1 or PKCS#8; relative to the config file


class SmtpConfig(_Section):
    host: NonEmpty
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: EnvName | None = None
    ca_file: Path | None = None  # extra CA bundle (a private relay); system CAs otherwise
    timeout: Annotated[Duration, duration_in(timedelta(seconds=1), timedelta(hours=1))] = timedelta(
        seconds=30
    )
    concurrency: int = Field(default=4, ge=1, le=64)
    rate_limit: float = Field(default=20, ge=0)  # messages per second over all connections
    retries: int = Field(default=3, ge=0, le=20)  # in-run retries of a temporary failure
    # The first backoff; doubles on each retry.
    retry_delay: Annotated[Duration, duration_in(timedelta(0), timedelta(hours=1))] = timedelta(
        seconds=2
    )
    messages_per_connection: int = Field(default=100, ge=1)
    max_hard_bounces: int = Field(default=3, ge=1)
    dkim: DkimConfig | None = None

    def password(self) -> str | None:
        """The password from the environment variable the file names."""
        return secret_from_env(self.password_env, "smtp.password_env")


class SubscriptionsConfig(_Section):
    base_url: AbsoluteUrl
    # Confirmation, welcome mail and proofs (From and envelope); default: digest.from.
    from_addr: Mailbox | None = Field(default=None, alias="from")
    secret_env: EnvName = "KCRUSH_SECRET"
    confirm_ttl: Annotated[Duration, duration_in(timedelta(minutes=10), timedelta(days=90))] = (
        timedelta(days=7)
    )
    # --- serve (see docs/serve.md) ---
    templates_dir: Path | None = None  # overrides for the built-in templates/web pages
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed; none by default, so a
    # client cannot pick its own address to dodge the rate limit.
    trusted_proxies: list[Annotated[str, AfterValidator(_check_proxy)]] = Field(
        default_factory=list
    )
    rate_limit_client: int = Field(default=10, ge=1)  # subscribe POSTs per client address ...
    rate_limit_address: int = Field(default=3, ge=1)  # ... and per target address ...
    # ... within this sliding window
    rate_limit_window: Annotated[Duration, duration_in(timedelta(seconds=1), timedelta(days=7))] = (
        timedelta(hours=1)
    )
    max_body: int = Field(default=16384, ge=1024, le=1048576)  # bytes in one request body
    # Confirmation and welcome mail that could not be sent: retried after mail_retry,
    # doubling (at most 10 minutes apart), for mail_retry_for, also across restarts.
    mail_retry: Duration = timedelta(seconds=30)
    mail_retry_for: Duration = timedelta(hours=1)

    def secret(self) -> bytes:
        value = secret_from_env(self.secret_env, "subscriptions.secret_env")
        if value is None or len(value) < 16:
            raise ConfigError(
                f"the environment variable {self.secret_env} (subscriptions.secret_env) "
                "must hold a secret of at least 16 characters",
                hint="for example: export "
                f"{self.secret_env}=$(python3 -c 'import secrets; print(secrets.token_hex(32))')",
            )
        return value.encode()


class ArchiveConfig(_Section):
    """The newsletter on the web: the sent digests as pages and feeds (docs/archive.md)."""

    output_dir: Path = Path("public/newsletter")
    base_url: AbsoluteUrl  # public URL of output_dir; issue pages are base_url/WEEK/
    templates_dir: Path | None = None  # overrides for the built-in templates/archive pages
    issues_per_page: int = Field(default=50, ge=1, le=1000)  # the index, paginated past this
    items_per_feed: int = Field(default=20, ge=1, le=1000)  # issues in the archive feeds


class ScheduleConfig(_Section):
    build_every: Annotated[Duration, duration_in(timedelta(seconds=1), timedelta(days=7))] = (
        timedelta(minutes=15)
    )
    misfire_grace_time: Annotated[Duration, duration_in(timedelta(0), timedelta(days=30))] = (
        timedelta(hours=6)
    )


class SourceConfig(_Section):
    type: Literal["wordpress", "feed", "file"]
    name: str | None = None
    url: AbsoluteUrl | None = None
    path: Path | None = None
    categories: list[NonEmpty] = Field(default_factory=list)  # for feed entries with none
    # WordPress: a user and an application password (read from the environment) let the
    # import see drafts, private and trashed posts, so unpublished posts are withdrawn.
    username: str | None = None
    password_env: EnvName | None = None

    @model_validator(mode="after")
    def _where(self) -> SourceConfig:
        if self.type == "file" and self.path is None:
            raise ValueError("a file source needs 'path'")
        if self.type == "wordpress" and self.url is None:
            raise ValueError("a wordpress source needs 'url'")
        if self.type == "feed" and (self.url is None) == (self.path is None):
            raise ValueError("a feed source needs either 'url' or 'path'")
        if (self.username is None) != (self.password_env is None):
            raise ValueError("'username' and 'password_env' go together")
        if self.username is not None and self.type != "wordpress":
            raise ValueError("'username' and 'password_env' are for wordpress sources")
        return self

    @property
    def label(self) -> str:
        return self.name or self.url or str(self.path)


class ImapConfig(_Section):
    """``[bounces.imap]``: the mailbox ``inbound`` (no PATH) and ``schedule`` read."""

    host: NonEmpty
    port: int = Field(default=993, ge=1, le=65535)  # implicit TLS (IMAPS)
    username: NonEmpty
    password_env: EnvName = "KCRUSH_IMAP_PASSWORD"
    folder: NonEmpty = "INBOX"
    processed_folder: NonEmpty = "Processed"  # understood messages move here
    ca_file: Path | None = None  # extra CA bundle (a private server); system CAs otherwise
    timeout: Duration = timedelta(seconds=30)

    def password(self) -> str:
        """The password from the environment variable the file names."""
        value = secret_from_env(self.password_env, "bounces.imap.password_env")
        assert value is not None  # password_env is always set
        return value


class WebhooksConfig(_Section):
    """``[bounces.webhooks]``: the relays' bounce and complaint webhooks on ``serve``."""

    mailgun_signing_key_env: EnvName | None = None
    postmark_username: str | None = None
    postmark_password_env: EnvName | None = None
    ses_topic_arn: str | None = None
    ses_cert_file: Path | None = None  # the SNS signing certificate, pinned
    max_age: Duration = timedelta(minutes=5)  # Mailgun timestamps older than this are stale

    @model_validator(mode="after")
    def _pairs(self) -> WebhooksConfig:
        if (self.postmark_username is None) != (self.postmark_password_env is None):
            raise ValueError("'postmark_username' and 'postmark_password_env' go together")
        if self.ses_cert_file is not None and self.ses_topic_arn is None:
            raise ValueError("'ses_cert_file' needs 'ses_topic_arn'")
        return self


class BouncesConfig(_Section):
    """``[bounces]``: returned mail (see docs/bounces.md)."""

    address: Mailbox | None = None  # envelope sender bounces+TOKEN@domain of each digest
    unsubscribe_address: Mailbox | None = None  # the List-Unsubscribe mailto
    soft_limit: int = Field(default=3, ge=1)  # soft bounces within soft_window suppress
    soft_window: Duration = timedelta(days=30)
    imap: ImapConfig | None = None
    webhooks: WebhooksConfig = WebhooksConfig()

    @field_validator("address")
    @classmethod
    def _short_local_part(cls, value: str | None) -> str | None:
        # bounces+<token>: the token takes up to 51 octets of the 64 a local part may have.
        if value is not None and len(parseaddr(value)[1].rpartition("@")[0]) > 12:
            raise ValueError(
                f"{value!r}: the local part must be at most 12 characters, to leave room "
                "for the +TOKEN within the 64 an address allows (for example 'bounces@...')"
            )
        return value


class Config(_Section):
    """The whole configuration. ``path`` is the file it came from."""

    path: Path = Field(default=Path(DEFAULT_CONFIG), exclude=True)
    site: SiteConfig
    storage: StorageConfig = StorageConfig()
    feeds: FeedsConfig
    digest: DigestConfig | None = None
    smtp: SmtpConfig | None = None
    subscriptions: SubscriptionsConfig | None = None
    archive: ArchiveConfig | None = None
    schedule: ScheduleConfig = ScheduleConfig()
    sources: list[SourceConfig] = Field(default_factory=list)
    bounces: BouncesConfig | None = None

    @model_validator(mode="after")
    def _paths_exist(self) -> Config:
        # Checked here, not when a mail is first written: a missing directory or CA file
        # would otherwise be an internal error hours later, in the middle of a run.
        wanted: list[tuple[str, Path | None, bool]] = [
            ("digest.templates_dir", self.digest.templates_dir if self.digest else None, True),
            (
                "subscriptions.templates_dir",
                self.subscriptions.templates_dir if self.subscriptions else None,
                True,
            ),
            ("smtp.ca_file", self.smtp.ca_file if self.smtp else None, False),
        ]
        for key, path, directory in wanted:
            if path is None:
                continue
            where = self.resolve(path)
            if not (where.is_dir() if directory else where.is_file()):
                kind = "a directory" if directory else "a file"
                raise ValueError(f"{key}: {str(path)!r} is not {kind} (looked for {where})")
        return self

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, path: Path) -> Path:
        """A path from the file, made absolute against the file's directory."""
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def database_path(self) -> Path:
        return self.resolve(self.storage.database)

    @property
    def output_dir(self) -> Path:
        return self.resolve(self.feeds.output_dir)

    @property
    def archive_dir(self) -> Path | None:
        return None if self.archive is None else self.resolve(self.archive.output_dir)

    def require_digest(self) -> DigestConfig:
        if self.digest is None:
            raise ConfigError(f"{self.path}: [digest]: the section is missing")
        return self.digest

    def require_smtp(self) -> SmtpConfig:
        if self.smtp is None:
            raise ConfigError(f"{self.path}: [smtp]: the section is missing")
        return self.smtp

    @property
    def transactional_from(self) -> str:
        """The From of confirmation, welcome and proof mail: ``subscriptions.from``, else
        ``digest.from``."""
        chosen = self.subscriptions.from_addr if self.subscriptions else None
        return chosen or self.require_digest().from_addr

    def require_subscriptions(self) -> SubscriptionsConfig:
        if self.subscriptions is None:
            raise ConfigError(f"{self.path}: [subscriptions]: the section is missing")
        return self.subscriptions


# --- loading -------------------------------------------------------------------------------


def secret_from_env(name: str | None, key: str) -> str | None:
    """Read a secret from the environment variable ``name`` (named by config ``key``)."""
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(
            f"the environment variable {name} (named by {key}) is not set",
            hint=f"export {name}=... in the environment that runs kcrush-feeds",
        )
    return value


def find_config(explicit: str | Path | None) -> Path:
    """``--config``, else ``$KCRUSH_FEEDS_CONFIG``, else ``./config.toml``."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)


def config_origin(explicit: str | Path | None) -> str:
    """Where ``find_config`` took the path from, as a person would want to be told."""
    if explicit:
        return "given with --config"
    if os.environ.get(ENV_CONFIG):
        return f"from ${ENV_CONFIG}"
    return "the default, ./config.toml"


def load_config(path: Path, *, origin: str | None = None) -> Config:
    """Read and validate ``path``; raise ``ConfigError`` naming file, key and problem.

    ``origin`` (see ``config_origin``) says where the path came from, for the message
    when there is no file there.
    """
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError as e:
        where = f"looked in {path.absolute().parent}"
        if origin:
            where += f"; the path is {origin}"
        raise ConfigError(
            f"{path}: config file not found ({where})",
            hint="create one with 'kcrush-feeds init DIR', or pass --config FILE",
        ) from e
    except IsADirectoryError as e:
        inside = path / DEFAULT_CONFIG
        raise ConfigError(
            f"{path}: is a directory, not a config file",
            hint=f"pass the file: --config {inside}"
            + ("" if inside.is_file() else f" (there is no {DEFAULT_CONFIG} in it yet)"),
        ) from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    return parse_config(parse_toml(raw, path), path.resolve())


def parse_toml(raw: bytes, path: Path) -> dict[str, Any]:
    """The TOML document in ``raw`` (the file ``path``), or ``ConfigError`` saying why not."""
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: the file is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark, as some editors write
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 (byte {raw[e.start]:#04x}); TOML files are UTF-8"
        ) from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    except RecursionError as e:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from e
    except ValueError as e:  # an integer of more than 4,300 digits (int()'s limit)
        raise ConfigError(f"{path}: not valid TOML: {e}") from e


def parse_config(data: dict[str, Any], path: Path) -> Config:
    try:
        return Config.model_validate({**data, "path": path})
    except ValidationError as e:
        raise ConfigError(f"{path}: " + "; ".join(_describe(err) for err in e.errors())) from e


def _describe(error: Any) -> str:
    """One pydantic error as ``key.path: what is wrong``."""
    key = ""
    for part in error["loc"]:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "unknown key" + _did_you_mean(error["loc"])
    elif error["type"] == "missing":
        message = "required key is missing"
    message = message.removeprefix("Value error, ")
    return f"{key}: {message}" if key else message


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """``" (did you mean 'categories'?)"`` for an unknown key, from the keys allowed there."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # an index into a list of tables: the same model
        known = _keys_of(model)
        field_info = known.get(str(part))
        if field_info is None:
            return ""
        model = _model_in(field_info.annotation)
        if model is None:
            return ""
    names = [k for k in _keys_of(model) if k != "path"]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (the keys here are: {', '.join(names)})"


def _keys_of(model: Any) -> dict[str, Any]:
    """A model's keys as written in the file (the alias where there is one)."""
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _model_in(annotation: Any) -> Any:
    """The model inside ``X``, ``X | None`` or ``list[X]``, or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
