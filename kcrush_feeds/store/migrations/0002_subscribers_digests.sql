-- Subscribers, the digests sent (the ledger of what each one included) and deliveries.

CREATE TABLE subscribers (
    id              INTEGER PRIMARY KEY,
    email           TEXT NOT NULL,                 -- normalised address, as shown
    email_key       TEXT NOT NULL UNIQUE,          -- case-folded: duplicates merge on this
    name            TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'active', 'paused', 'unsubscribed', 'bounced')),
    categories      TEXT,                          -- JSON list of feed slugs; NULL = all
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    confirmed_at    INTEGER,
    unsubscribed_at INTEGER,
    hard_bounces    INTEGER NOT NULL DEFAULT 0,    -- consecutive permanent failures
    origin          TEXT NOT NULL DEFAULT 'cli'    -- cli, import, web
) STRICT;

CREATE INDEX subscribers_status ON subscribers (status);

-- One digest per period (ISO week in site.timezone). Once created its items are frozen.
CREATE TABLE digests (
    id           INTEGER PRIMARY KEY,
    period       TEXT NOT NULL UNIQUE,             -- "2024-W09"
    created_at   INTEGER NOT NULL,
    since        INTEGER NOT NULL,                 -- records published after this ...
    until        INTEGER NOT NULL,                 -- ... and up to this were considered
    status       TEXT NOT NULL DEFAULT 'sending' CHECK (status IN ('sending', 'done')),
    finished_at  INTEGER
) STRICT;

-- The ledger: a record that any digest included is never included again.
CREATE TABLE digest_items (
    digest_id    INTEGER NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    record_id    TEXT NOT NULL REFERENCES records (id),
    section      INTEGER NOT NULL,                 -- index into digest.sections
    position     INTEGER NOT NULL,                 -- order within the digest, newest first
    PRIMARY KEY (digest_id, record_id)
) STRICT;

CREATE INDEX digest_items_record ON digest_items (record_id);

-- One row per (digest, subscriber), written the moment the server answers.
CREATE TABLE deliveries (
    digest_id     INTEGER NOT NULL REFERENCES digests (id),
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id),
    status        TEXT NOT NULL CHECK (status IN ('sent', 'deferred', 'failed')),
    message_id    TEXT NOT NULL,                   -- the same on every retry
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_reply    TEXT,                            -- the server's reply to the last attempt
    updated_at    INTEGER NOT NULL,
    sent_at       INTEGER,
    PRIMARY KEY (digest_id, subscriber_id)
) STRICT;

CREATE INDEX deliveries_status ON deliveries (digest_id, status);
