-- Returned mail: bounces, complaints and unsubscribe requests that came back by mail
-- (inbound) or by a relay's webhook, each recorded against the delivery it is about.

-- One row per outcome. ``key`` makes processing idempotent: the same report about the
-- same delivery ("hard:12:345"), or the same message bytes, is recorded once.
CREATE TABLE mail_events (
    id             INTEGER PRIMARY KEY,
    key            TEXT NOT NULL UNIQUE,
    digest_id      INTEGER REFERENCES digests (id),      -- NULL: no delivery of ours known
    subscriber_id  INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint', 'unsubscribe')),
    status_code    TEXT NOT NULL DEFAULT '',             -- "5.1.1", or the relay's code
    diagnostic     TEXT NOT NULL DEFAULT '',             -- the remote server's words
    source         TEXT NOT NULL,                        -- mail, mailgun, postmark, ses
    reported_at    INTEGER NOT NULL,                     -- when the report says it happened
    received_at    INTEGER NOT NULL,                     -- when we processed it
    effect         TEXT NOT NULL                         -- bounced, unsubscribed, counted, none
                   CHECK (effect IN ('bounced', 'unsubscribed', 'counted', 'none'))
) STRICT;

CREATE INDEX mail_events_digest ON mail_events (digest_id, kind);
CREATE INDEX mail_events_subscriber ON mail_events (subscriber_id, kind, reported_at);

-- Message bytes already processed (sha256), so a message read twice counts once.
CREATE TABLE inbound_seen (
    sha256      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    seen_at     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Webhook tokens already accepted (Mailgun's signature token): a replay is refused.
CREATE TABLE webhook_replays (
    provider    TEXT NOT NULL,
    token       TEXT NOT NULL,
    seen_at     INTEGER NOT NULL,
    PRIMARY KEY (provider, token)
) STRICT, WITHOUT ROWID;

-- Why an unsubscribed subscriber stopped: 'link', 'mailto', 'complaint' (NULL: earlier).
ALTER TABLE subscribers ADD COLUMN unsubscribe_reason TEXT;
