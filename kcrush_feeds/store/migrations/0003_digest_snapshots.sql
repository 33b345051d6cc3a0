-- What each digest item showed, frozen when the digest was created: a record edited or
-- withdrawn while a digest is being sent does not change the messages still to go out,
-- and a retry next day carries the same bytes.
CREATE TABLE digest_snapshots (
    digest_id    INTEGER NOT NULL,
    record_id    TEXT NOT NULL,
    content      TEXT NOT NULL,                    -- JSON: the DigestItem as composed
    PRIMARY KEY (digest_id, record_id),
    FOREIGN KEY (digest_id, record_id) REFERENCES digest_items (digest_id, record_id)
        ON DELETE CASCADE
) STRICT;
