-- Content records and the record categories they carry.
-- Times are whole seconds since the epoch, UTC.
CREATE TABLE records (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    title         TEXT NOT NULL,
    published     INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    summary       TEXT NOT NULL DEFAULT '',
    content_html  TEXT NOT NULL DEFAULT '',
    image_url     TEXT,
    image_alt     TEXT NOT NULL DEFAULT '',
    image_type    TEXT,
    image_length  INTEGER NOT NULL DEFAULT 0,
    categories    TEXT NOT NULL,               -- JSON list of names, as given
    authors       TEXT NOT NULL DEFAULT '[]',  -- JSON list
    tags          TEXT NOT NULL DEFAULT '[]',  -- JSON list
    fingerprint   TEXT NOT NULL,               -- Record.fingerprint(): equal means unchanged
    source        TEXT NOT NULL DEFAULT '',    -- where it was imported from last
    first_seen    INTEGER NOT NULL,            -- when this store first saw it
    changed_at    INTEGER NOT NULL,            -- when its content last changed here
    withdrawn     INTEGER NOT NULL DEFAULT 0   -- 1: the source no longer publishes it
) STRICT;

CREATE INDEX records_published ON records (published DESC) WHERE withdrawn = 0;

-- One row per (record, category name). ``category_key`` is the case-folded name, so
-- "Interviews" and "interviews" are one category; ``published`` is repeated here so a
-- feed's newest entries come straight off the index.
CREATE TABLE record_categories (
    record_id     TEXT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    category_key  TEXT NOT NULL,
    name          TEXT NOT NULL,
    published     INTEGER NOT NULL,
    PRIMARY KEY (category_key, record_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX record_categories_newest ON record_categories (category_key, published DESC);
CREATE INDEX record_categories_record ON record_categories (record_id);
