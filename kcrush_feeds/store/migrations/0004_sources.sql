-- What kcrush-feeds remembers about each source it imports from (WordPress sites,
-- RSS/Atom/JSON feeds, record files), so the next import asks only for what changed.
-- ``key`` is "<kind> <url or path>": the same site named twice is one source.
-- Records imported from a source carry its key in records.source.
CREATE TABLE sources (
    key            TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('wordpress', 'feed', 'file')),
    url            TEXT NOT NULL,              -- the site or feed URL, or a file path
    cursor         TEXT,                       -- wordpress: newest modified_gmt seen (RFC 3339, UTC);
                                               -- feed: newest entry date seen
    etag           TEXT,                       -- feed: the last ETag, sent as If-None-Match
    last_modified  TEXT,                       -- feed: the last Last-Modified, sent as If-Modified-Since
    last_attempt   INTEGER,                    -- seconds since the epoch, UTC
    last_success   INTEGER,
    last_error     TEXT,                       -- NULL after a success
    last_summary   TEXT                        -- one line: what the last successful import did
) STRICT;
