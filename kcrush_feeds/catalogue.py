"""Which records a digest section or a subscriber's category choice gathers.

A digest section lists *digest categories*: feed slugs from ``[[feeds.categories]]`` (which
gather the record categories in their ``match`` list) or, for a name no feed has, a record
category name itself. Subscribers choose among the same digest categories. Matching is
case-insensitive, as everywhere else in kcrush-feeds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kcrush_feeds.config import Config


@dataclass(frozen=True, slots=True)
class Section:
    """One section of the digest: its title and the digest categories it gathers."""

    index: int
    title: str
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The digest's sections and, for every digest category, the record categories it takes."""

    sections: tuple[Section, ...]
    keys: dict[str, frozenset[str]]  # digest category -> case-folded record category names
    titles: dict[str, str]  # digest category -> what to show (the feed title, or the name)

    @classmethod
    def from_config(cls, config: Config) -> Catalogue:
        """The catalogue from ``[digest]`` sections (default: one section per feed)."""
        feeds = {c.slug: c for c in config.feeds.categories}
        digest = config.digest
        if digest is not None and digest.sections:
            sections = tuple(
                Section(i, s.title, tuple(s.categories)) for i, s in enumerate(digest.sections)
            )
        elif feeds:
            sections = tuple(Section(i, c.title, (c.slug,)) for i, c in enumerate(feeds.values()))
        else:
            sections = ()
        keys: dict[str, frozenset[str]] = {}
        titles: dict[str, str] = {}
        for name in [*feeds, *(c for s in sections for c in s.categories)]:
            if name in keys:
                continue
            feed = feeds.get(name)
            if feed is not None:
                keys[name] = frozenset(m.casefold() for m in feed.matches)
                titles[name] = feed.title
            else:
                keys[name] = frozenset({name.casefold()})
                titles[name] = name
        return cls(sections, keys, titles)

    @property
    def categories(self) -> tuple[str, ...]:
        """Every digest category a subscriber may choose, feed slugs first."""
        return tuple(self.keys)

    @property
    def gathers_everything(self) -> bool:
        """No sections and no feeds configured: the digest is one section of everything."""
        return not self.sections

    def topics(self, record_categories: Iterable[str]) -> tuple[str, ...]:
        """The digest categories a record with these category names belongs to."""
        names = {c.casefold() for c in record_categories}
        return tuple(slug for slug, keys in self.keys.items() if keys & names)

    def section_of(self, topics: tuple[str, ...]) -> Section | None:
        """The first section gathering any of ``topics`` (an item appears only once)."""
        chosen = set(topics)
        for section in self.sections:
            if chosen.intersection(section.categories):
                return section
        return None

    def check(self, category: str) -> str:
        """``category`` if subscribers may choose it, else ValueError naming the choices."""
        if category in self.keys:
            return category
        folded = {c.casefold(): c for c in self.keys}
        if category.casefold() in folded:
            return folded[category.casefold()]
        known = ", ".join(self.keys) or "(none configured)"
        raise ValueError(f"{category!r} is not a digest category (choose from {known})")
