-- Groups of people sharing a weekly schedule template, and the site's holidays. Both belong to the
-- directory: every change takes the next `directory_rev` and stamps it on the row, a deletion leaves a
-- tombstone (`group`, `holiday`), and every door's replica keeps a copy. A person's own schedule wins
-- over their group's; on a holiday everyone with a schedule is refused.
CREATE TABLE IF NOT EXISTS person_groups (
    id       BIGINT PRIMARY KEY AUTO_INCREMENT,
    name     VARCHAR(100) NOT NULL UNIQUE,
    schedule TEXT,                  -- WeeklySchedule as JSON; NULL = the group sets no hours
    rev      BIGINT NOT NULL DEFAULT 0,
    INDEX person_groups_rev (rev)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
ALTER TABLE people ADD COLUMN group_id BIGINT, ADD INDEX people_group (group_id),
    ADD CONSTRAINT people_group_fk FOREIGN KEY (group_id) REFERENCES person_groups(id) ON DELETE SET NULL;
CREATE TABLE IF NOT EXISTS holidays (
    id   BIGINT PRIMARY KEY AUTO_INCREMENT,
    day  DATE NOT NULL UNIQUE,      -- a local date in the site's time zone
    name VARCHAR(100) NOT NULL,
    rev  BIGINT NOT NULL DEFAULT 0,
    INDEX holidays_rev (rev)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
