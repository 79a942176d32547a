-- The audit trail: every administrative change and remote command, who made it, how and from where.
-- Rows are only ever added, never changed or pruned; each is also an `audit` event in the outbox,
-- written in the same transaction.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    time    TEXT NOT NULL,
    door_id TEXT NOT NULL,
    actor   TEXT NOT NULL,
    via     TEXT NOT NULL,          -- web | api | mqtt | cli
    origin  TEXT,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX audit_time_id ON audit(time, id);
CREATE INDEX audit_door ON audit(door_id, id);
