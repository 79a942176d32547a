-- Single-use invitations to create an account with a card: an administrator issues one for an enrolled
-- person; only the SHA-256 of the code is kept. `used` is stamped when the account is created.
CREATE TABLE invitations (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    code_hash BLOB NOT NULL UNIQUE,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    created   TEXT NOT NULL,
    expires   TEXT NOT NULL,
    used      TEXT
);
CREATE INDEX invitations_person ON invitations(person_id);
