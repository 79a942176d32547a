-- Replication of the directory (people, cards, faces) to each door's local replica. Every change to one
-- of these rows takes the next `directory_rev` (the counter row is locked until commit, so revisions
-- commit in order) and stamps it on the row; a deleted row leaves its key in `deletions`. A replica
-- asks for everything with a revision above the one it has.
ALTER TABLE people ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cards ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
ALTER TABLE faces ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE INDEX people_rev ON people(rev);
CREATE INDEX cards_rev ON cards(rev);
CREATE INDEX faces_rev ON faces(rev);
CREATE TABLE deletions (
    rev      BIGINT PRIMARY KEY,
    kind     TEXT NOT NULL,     -- person | card | face
    item_id  BIGINT,            -- person or face id
    card_uid BYTEA              -- card uid
);
INSERT INTO counters (name, value) VALUES ('directory_rev', 0);
