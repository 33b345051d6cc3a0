-- Editors in the loop: the editor's hand on a digest, its approval, and the outbox of
-- transactional mail (confirmation, welcome, proofs) that serve retries in the background.

-- One row per digest an editor touched or a proof was sent for.
CREATE TABLE digest_editorial (
    digest_id          INTEGER PRIMARY KEY REFERENCES digests (id) ON DELETE CASCADE,
    note               TEXT NOT NULL DEFAULT '',    -- Markdown (CommonMark), as written
    subject            TEXT,                        -- NULL: the subject template
    pins               TEXT NOT NULL DEFAULT '[]',  -- JSON list of record ids, in order
    drops              TEXT NOT NULL DEFAULT '[]',  -- JSON list of record ids
    revision           INTEGER NOT NULL DEFAULT 0,  -- +1 on every edit
    updated_at         INTEGER NOT NULL,
    proof_revision     INTEGER,                     -- the revision the last proof showed
    proof_sent_at      INTEGER,
    approved_revision  INTEGER,                     -- approval holds for this revision only
    approved_at        INTEGER,
    approved_by        TEXT
) STRICT;

-- Mail that is not a digest delivery: kept until the server accepted it, retried with
-- backoff, given up after a while. ``dedupe`` makes a mail once-only ("welcome:ID").
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,                    -- confirm, welcome, notice
    dedupe        TEXT UNIQUE,
    sender        TEXT NOT NULL,                    -- the envelope sender
    recipient     TEXT NOT NULL,
    data          BLOB NOT NULL,                    -- the message, exactly as it is sent
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'sent', 'failed', 'expired')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    next_attempt  INTEGER NOT NULL,
    last_reply    TEXT,
    sent_at       INTEGER
) STRICT;

CREATE INDEX outbox_due ON outbox (status, next_attempt);
