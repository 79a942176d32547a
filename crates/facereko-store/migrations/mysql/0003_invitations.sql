-- Single-use invitations to create an account with a card: an administrator issues one for an enrolled
-- person; only the SHA-256 of the code is kept. `used` is stamped when the account is created.
CREATE TABLE IF NOT EXISTS invitations (
    id        BIGINT PRIMARY KEY AUTO_INCREMENT,
    code_hash BINARY(32) NOT NULL UNIQUE,
    person_id BIGINT NOT NULL,
    created   DATETIME(6) NOT NULL,
    expires   DATETIME(6) NOT NULL,
    used      DATETIME(6),
    INDEX invitations_person (person_id),
    FOREIGN KEY (person_id) REFERENCES people(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
