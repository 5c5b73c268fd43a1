-- Which process drives the instances in this store. A holder keeps renewing its lease;
-- another holder can take it only once it has expired.
CREATE TABLE engine_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
