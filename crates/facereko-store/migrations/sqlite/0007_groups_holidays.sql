-- Groups of people sharing a weekly schedule template, and the site's holidays. Both belong to the
-- directory: every change takes the next `directory_rev` and stamps it on the row, a deletion leaves a
-- tombstone (`group`, `holiday`), and every door's replica keeps a copy. A person's own schedule wins
-- over their group's; on a holiday everyone with a schedule is refused.
CREATE TABLE person_groups (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT NOT NULL UNIQUE,
    schedule TEXT,                  -- WeeklySchedule as JSON; NULL = the group sets no hours
    rev      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX person_groups_rev ON person_groups(rev);
ALTER TABLE people ADD COLUMN group_id INTEGER REFERENCES person_groups(id) ON DELETE SET NULL;
CREATE INDEX people_group ON people(group_id);
CREATE TABLE holidays (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    day  TEXT NOT NULL UNIQUE,      -- a local date in the site's time zone, YYYY-MM-DD
    name TEXT NOT NULL,
    rev  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX holidays_rev ON holidays(rev);
