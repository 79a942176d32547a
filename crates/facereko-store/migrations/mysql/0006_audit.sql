-- The audit trail: every administrative change and remote command, who made it, how and from where.
-- Rows are only ever added, never changed or pruned; each is also an `audit` event in the outbox,
-- written in the same transaction.
CREATE TABLE IF NOT EXISTS audit (
    id      BIGINT PRIMARY KEY AUTO_INCREMENT,
    time    DATETIME(6) NOT NULL,
    door_id VARCHAR(64) NOT NULL,
    actor   VARCHAR(200) NOT NULL,
    via     VARCHAR(8) NOT NULL /* web | api | mqtt | cli */,
    origin  VARCHAR(300),
    action  VARCHAR(64) NOT NULL,
    target  VARCHAR(300) NOT NULL,
    detail  TEXT NOT NULL,
    INDEX audit_time_id (time, id),
    INDEX audit_door (door_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
