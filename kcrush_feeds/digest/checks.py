"""Config checks that need to know what the store holds: the digest sections' categories.

A ``[[digest.sections]] categories`` name is a feed slug or a record category name. One
that is neither (``"kpop-interview"`` for ``"kpop-interviews"``) would make that section
silently empty, so it is a config error, with the closest known name offered. Pure: the
caller passes the record category names the store holds.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from kcrush_feeds.config import Config
from kcrush_feeds.errors import ConfigError


def section_problems(config: Config, record_categories: Iterable[str]) -> list[str]:
    """One message per section category that names nothing; empty when all is well."""
    digest = config.digest
    if digest is None or not digest.sections:
        return []
    slugs = [c.slug for c in config.feeds.categories]
    stored = list(record_categories)
    known = {*slugs, *(name.casefold() for name in stored)}
    problems = []
    for i, section in enumerate(digest.sections):
        for name in section.categories:
            if name in known or name.casefold() in known:
                continue
            close = difflib.get_close_matches(name, [*slugs, *stored], n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else _choices(slugs, stored)
            problems.append(
                f"digest.sections[{i}].categories: {name!r} is neither a feed slug nor a "
                f"record category in the store ({hint})"
            )
    return problems


def check_sections(config: Config, record_categories: Iterable[str]) -> None:
    """Raise ``ConfigError`` (exit 2) naming every section category that names nothing."""
    problems = section_problems(config, record_categories)
    if problems:
        raise ConfigError(
            f"{config.path}: " + "; ".join(problems),
            hint="a section lists feed slugs from [[feeds.categories]] or record category "
            "names (see 'kcrush-feeds status')",
        )


def _choices(slugs: list[str], stored: list[str]) -> str:
    names = [*slugs, *stored]
    if not names:
        return "no feed slugs are configured and the store holds no records yet"
    shown = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
    return f"known: {shown}"
