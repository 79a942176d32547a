-- Enrolment photos copied into the database (`fleet.share_photos`), so every door and web app of a site
-- can show them; without the setting a photo stays only in the data directory that took it.
CREATE TABLE face_photos (
    face_id BIGINT PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    image   BYTEA NOT NULL
);
