-- FaceReko schema 1 (MySQL/MariaDB). Times are UTC DATETIME(6), card UIDs raw bytes.
-- Text uses utf8mb4_unicode_ci: a _bin collation would make sqlx see every text column as bytes. So
-- names, usernames and door ids are unique case-insensitively here; lookups re-check the exact spelling.
CREATE TABLE IF NOT EXISTS people (
    id          BIGINT PRIMARY KEY AUTO_INCREMENT,
    name        VARCHAR(100) NOT NULL UNIQUE,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    valid_from  DATETIME(6),
    valid_until DATETIME(6),
    schedule    TEXT,               -- WeeklySchedule as JSON; NULL = any time
    created     DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS cards (
    uid       VARBINARY(10) PRIMARY KEY,     -- 4, 7 or 10 raw bytes
    person_id BIGINT NOT NULL,
    label     VARCHAR(100),
    active    BOOLEAN NOT NULL DEFAULT TRUE,
    created   DATETIME(6) NOT NULL,
    INDEX cards_person (person_id),
    FOREIGN KEY (person_id) REFERENCES people(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS faces (
    id        BIGINT PRIMARY KEY AUTO_INCREMENT,
    person_id BIGINT NOT NULL,
    embedding MEDIUMBLOB NOT NULL,        -- little-endian f32s
    model_id  VARCHAR(128) NOT NULL,
    photo     VARCHAR(255),                 -- relative to the data directory
    created   DATETIME(6) NOT NULL,
    INDEX faces_person (person_id),
    FOREIGN KEY (person_id) REFERENCES people(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS accounts (
    id                   BIGINT PRIMARY KEY AUTO_INCREMENT,
    username             VARCHAR(64) NOT NULL UNIQUE,
    password_hash        VARCHAR(255) NOT NULL, -- Argon2id PHC string
    role                 VARCHAR(16) NOT NULL, -- admin | viewer
    person_id BIGINT,
    card_uid             VARBINARY(10),
    failed_logins        BIGINT NOT NULL DEFAULT 0,
    locked_until         DATETIME(6),
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    created              DATETIME(6) NOT NULL,
    last_login           DATETIME(6),
    FOREIGN KEY (person_id) REFERENCES people(id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS sessions (
    token_hash BINARY(32) PRIMARY KEY,    -- SHA-256 of the cookie value
    account_id BIGINT NOT NULL,
    created    DATETIME(6) NOT NULL,
    expires    DATETIME(6) NOT NULL,
    INDEX sessions_account (account_id),
    INDEX sessions_expires (expires),
    FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS api_tokens (
    id         BIGINT PRIMARY KEY AUTO_INCREMENT,
    account_id BIGINT NOT NULL,
    name       VARCHAR(100) NOT NULL,
    token_hash BINARY(32) NOT NULL UNIQUE, -- SHA-256 of the token
    created    DATETIME(6) NOT NULL,
    expires    DATETIME(6),
    last_used  DATETIME(6),
    INDEX api_tokens_account (account_id),
    FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS attempts (
    id          BIGINT PRIMARY KEY AUTO_INCREMENT,
    uuid        BINARY(16) NOT NULL UNIQUE, -- 16 random bytes: idempotent spool replay, photo file name
    time        DATETIME(6) NOT NULL,
    door_id     VARCHAR(64) NOT NULL,
    card_uid    VARBINARY(10),
    person_id BIGINT,
    person_name TEXT,
    outcome     VARCHAR(32) NOT NULL,
    similarity  FLOAT,
    distance    FLOAT,
    confidence  FLOAT,
    photo       VARCHAR(255),
    lookup_ms   BIGINT,
    capture_ms  BIGINT,
    detect_ms   BIGINT,
    match_ms    BIGINT,
    total_ms    BIGINT,
    detail      TEXT,
    INDEX attempts_person (person_id, id),
    INDEX attempts_person_outcome (person_id, outcome, id),
    INDEX attempts_outcome (outcome, id),
    INDEX attempts_door (door_id, id),
    INDEX attempts_time (time),
    FOREIGN KEY (person_id) REFERENCES people(id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS settings (
    door_id VARCHAR(64) NOT NULL,
    name    VARCHAR(64) NOT NULL,
    value   VARCHAR(255) NOT NULL,
    updated DATETIME(6) NOT NULL,
    PRIMARY KEY (door_id, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS counters (
    name  VARCHAR(64) PRIMARY KEY,
    value BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT IGNORE INTO counters (name, value) VALUES ('faces_version', 0);

CREATE TABLE IF NOT EXISTS outbox (
    id      BIGINT PRIMARY KEY AUTO_INCREMENT,
    door_id VARCHAR(64) NOT NULL,
    time    DATETIME(6) NOT NULL,
    event   MEDIUMTEXT NOT NULL /* facereko_domain::Event as JSON */,
    INDEX outbox_door (door_id, id),
    INDEX outbox_time (time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per door: enqueuers lock it so ids become visible in order (no gaps a sink could skip).
CREATE TABLE IF NOT EXISTS outbox_heads (
    door_id VARCHAR(64) PRIMARY KEY,
    seq     BIGINT NOT NULL,
    last_id BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS outbox_sinks (
    door_id  VARCHAR(64) NOT NULL,
    sink     VARCHAR(64) NOT NULL,
    acked_id BIGINT NOT NULL,
    PRIMARY KEY (door_id, sink)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
