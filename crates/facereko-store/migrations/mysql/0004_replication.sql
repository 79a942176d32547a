-- Replication of the directory (people, cards, faces) to each door's local replica. Every change to one
-- of these rows takes the next `directory_rev` (the counter row is locked until commit, so revisions
-- commit in order) and stamps it on the row; a deleted row leaves its key in `deletions`. A replica
-- asks for everything with a revision above the one it has.
ALTER TABLE people ADD COLUMN rev BIGINT NOT NULL DEFAULT 0, ADD INDEX people_rev (rev);
ALTER TABLE cards ADD COLUMN rev BIGINT NOT NULL DEFAULT 0, ADD INDEX cards_rev (rev);
ALTER TABLE faces ADD COLUMN rev BIGINT NOT NULL DEFAULT 0, ADD INDEX faces_rev (rev);
CREATE TABLE IF NOT EXISTS deletions (
    rev      BIGINT PRIMARY KEY,
    kind     VARCHAR(10) NOT NULL,  -- person | card | face
    item_id  BIGINT,                -- person or face id
    card_uid VARBINARY(10)          -- card uid
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT IGNORE INTO counters (name, value) VALUES ('directory_rev', 0);
