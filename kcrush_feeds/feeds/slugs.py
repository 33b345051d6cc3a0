"""Safe, stable file-name slugs for category names, whatever the name is.

A slug is ASCII ``[a-z0-9-]``, at most 64 characters, never empty and never a name Windows
reserves (``CON``, ``NUL``, ``COM1``...), so it is a safe directory name inside the output
directory and needs no escaping in a URL. A plain name keeps a readable slug
(``"K-Pop Articles"`` -> ``k-pop-articles``). When making the slug loses something (Korean
letters, emoji, punctuation such as ``../``, a cut at the length limit, a reserved name), a
short hash of the case-folded name is appended, so such names stay apart and the slug is
the same on every run and every machine. Two names that still end up with one slug are
refused (``check_unique``): a feed never overwrites another feed's files.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

from kcrush_feeds.errors import FeedError

_READABLE = 40  # characters kept from the name before the hash is appended
_HASH_BYTES = 5  # 10 hex characters
_PLAIN_RE = re.compile(r"[A-Za-z0-9 _-]+")  # names made only of these lose nothing
_RUN_RE = re.compile(r"[^a-z0-9]+")
# Device names Windows reserves in any directory, with or without an extension.
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "clock"}
    | {f"com{i}" for i in range(10)}
    | {f"lpt{i}" for i in range(10)}
)
# Names the output directory uses itself (see building.py): a category slug must not take them.
RESERVED_SLUGS = frozenset({"all"})


def name_key(name: str) -> str:
    """The key two category names share when they are the same category (case-insensitive)."""
    return name.casefold()


def _hash(name: str) -> str:
    digest = hashlib.blake2b(name_key(name).encode("utf-8"), digest_size=_HASH_BYTES)
    return digest.hexdigest()


def slugify(name: str) -> str:
    """The slug for the category ``name``: readable when it can be, unique by hash otherwise."""
    # NFKD splits "é" into "e" and an accent, and full-width letters into ASCII ones, so
    # Latin names keep their letters; what is still not ASCII becomes a separator.
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    readable = _RUN_RE.sub("-", folded).strip("-")
    lossy = (
        not _PLAIN_RE.fullmatch(name)
        or not readable
        or len(readable) > _READABLE
        or readable in _RESERVED
        or readable in RESERVED_SLUGS
    )
    if not lossy:
        return readable
    readable = readable[:_READABLE].strip("-") or "category"
    return f"{readable}-{_hash(name)}"


CLASH_HINT = (
    "give one of them another slug in [[feeds.categories]], or list the "
    "record category in the 'match' of the feed that should gather it"
)


def clash_message(slug: str, whats: Iterable[str]) -> str:
    """``A and B would both write the feeds in slug/``."""
    return f"{' and '.join(whats)} would both write the feeds in {slug}/"


def check_unique(named: Iterable[tuple[str, str]]) -> None:
    """Refuse (``FeedError``) when two feeds, given as ``(slug, what)``, share a slug."""
    seen: dict[str, str] = {}
    for slug, what in named:
        other = seen.get(slug)
        if other is not None:
            raise FeedError(clash_message(slug, (what, other)), hint=CLASH_HINT)
        seen[slug] = what


def clashing_slugs(names: Iterable[str], taken: Iterable[str] = ()) -> dict[str, list[str]]:
    """Slugs that two of ``names`` (or one of them and a slug in ``taken``) would share,
    with the names that share each: a record category name can be anything, so this is
    reported, never a reason to stop (see ``feeds.build``)."""
    by_slug: dict[str, dict[str, str]] = {}
    for name in names:
        by_slug.setdefault(slugify(name), {}).setdefault(name_key(name), name)
    taken = set(taken)
    return {
        slug: list(group.values())
        for slug, group in by_slug.items()
        if len(group) > 1 or slug in taken
    }
