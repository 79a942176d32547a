-- History pages with a date filter are ordered and paged by (time, id): these indexes let a page far in
-- the past start at its place instead of walking every newer attempt.
CREATE INDEX attempts_time_id ON attempts(time, id);
CREATE INDEX attempts_person_time ON attempts(person_id, time, id);
