-- Enrolment photos copied into the database (`fleet.share_photos`), so every door and web app of a site
-- can show them; without the setting a photo stays only in the data directory that took it.
CREATE TABLE IF NOT EXISTS face_photos (
    face_id BIGINT PRIMARY KEY,
    image   MEDIUMBLOB NOT NULL,
    FOREIGN KEY (face_id) REFERENCES faces(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
