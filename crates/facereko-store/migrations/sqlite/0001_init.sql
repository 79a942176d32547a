-- FaceReko schema 1 (SQLite). Times are UTC (RFC 3339 text), card UIDs raw bytes, flags 0/1.
CREATE TABLE people (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    active      BOOLEAN NOT NULL DEFAULT 1,
    valid_from  TEXT,
    valid_until TEXT,
    schedule    TEXT,               -- WeeklySchedule as JSON; NULL = any time
    created     TEXT NOT NULL
);

CREATE TABLE cards (
    uid       BLOB PRIMARY KEY,     -- 4, 7 or 10 raw bytes
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    label     TEXT,
    active    BOOLEAN NOT NULL DEFAULT 1,
    created   TEXT NOT NULL
);
CREATE INDEX cards_person ON cards(person_id);

CREATE TABLE faces (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,        -- little-endian f32s
    model_id  TEXT NOT NULL,
    photo     TEXT,                 -- relative to the data directory
    created   TEXT NOT NULL
);
CREATE INDEX faces_person ON faces(person_id);

CREATE TABLE accounts (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    username             TEXT NOT NULL UNIQUE,
    password_hash        TEXT NOT NULL, -- Argon2id PHC string
    role                 TEXT NOT NULL, -- admin | viewer
    person_id            INTEGER REFERENCES people(id) ON DELETE SET NULL,
    card_uid             BLOB,
    failed_logins        INTEGER NOT NULL DEFAULT 0,
    locked_until         TEXT,
    must_change_password BOOLEAN NOT NULL DEFAULT 0,
    created              TEXT NOT NULL,
    last_login           TEXT
);

CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,    -- SHA-256 of the cookie value
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created    TEXT NOT NULL,
    expires    TEXT NOT NULL
);
CREATE INDEX sessions_account ON sessions(account_id);
CREATE INDEX sessions_expires ON sessions(expires);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE, -- SHA-256 of the token
    created    TEXT NOT NULL,
    expires    TEXT,
    last_used  TEXT
);
CREATE INDEX api_tokens_account ON api_tokens(account_id);

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        BLOB NOT NULL UNIQUE, -- 16 random bytes: idempotent spool replay, photo file name
    time        TEXT NOT NULL,
    door_id     TEXT NOT NULL,
    card_uid    BLOB,
    person_id   INTEGER REFERENCES people(id) ON DELETE SET NULL,
    person_name TEXT,
    outcome     TEXT NOT NULL,
    similarity  REAL,
    distance    REAL,
    confidence  REAL,
    photo       TEXT,
    lookup_ms   INTEGER,
    capture_ms  INTEGER,
    detect_ms   INTEGER,
    match_ms    INTEGER,
    total_ms    INTEGER,
    detail      TEXT
);
CREATE INDEX attempts_person ON attempts(person_id, id);
CREATE INDEX attempts_person_outcome ON attempts(person_id, outcome, id);
CREATE INDEX attempts_outcome ON attempts(outcome, id);
CREATE INDEX attempts_door ON attempts(door_id, id);
CREATE INDEX attempts_time ON attempts(time);

CREATE TABLE settings (
    door_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    value   TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (door_id, name)
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('faces_version', 0);

CREATE TABLE outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    door_id TEXT NOT NULL,
    time    TEXT NOT NULL,
    event   TEXT NOT NULL           -- facereko_domain::Event as JSON
);
CREATE INDEX outbox_door ON outbox(door_id, id);
CREATE INDEX outbox_time ON outbox(time);

-- One row per door: enqueuers lock it so ids become visible in order (no gaps a sink could skip).
CREATE TABLE outbox_heads (
    door_id TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL,
    last_id INTEGER NOT NULL
);

CREATE TABLE outbox_sinks (
    door_id  TEXT NOT NULL,
    sink     TEXT NOT NULL,
    acked_id INTEGER NOT NULL,
    PRIMARY KEY (door_id, sink)
);
