"""kcrush-feeds: per-category feeds and a weekly email digest for the KCrush magazine."""

__version__ = "0.1.0"
