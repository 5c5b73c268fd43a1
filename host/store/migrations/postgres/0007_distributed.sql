-- Distributed mode: several masters and workers on one database. Keep in step with
-- ../sqlite/0007_distributed.sql.
--
-- Every live process has a row here, renewed by its heartbeat. `generation` grows by
-- one at every registration and at every declaration of death, so a write conditional
-- on (id, generation) fails for a process that lost its lease, whatever it believes.
-- `failover_pending` is 1 from the moment a node is declared dead until the failover of
-- `failover_gen` (the generation that died) is recorded as done; a node that registers
-- again meanwhile keeps it, so its failover still happens.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    address TEXT NOT NULL,
    groups TEXT NOT NULL,
    slots BIGINT NOT NULL,
    slots_used BIGINT NOT NULL DEFAULT 0,
    shared_slots BIGINT NOT NULL,
    exclusive_slots BIGINT NOT NULL,
    cpu_load DOUBLE PRECISION NOT NULL DEFAULT 0,
    memory_used DOUBLE PRECISION NOT NULL DEFAULT 0,
    heartbeat_at BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    state TEXT NOT NULL,
    failover_pending BIGINT NOT NULL DEFAULT 0,
    failover_gen BIGINT NOT NULL DEFAULT 0
);
-- The master that drives an instance, and the generation it had when it took it; every
-- write a master makes for the instance is fenced on both. NULL in single-node mode.
-- The index leads with the owner and serves "this owner's unfinished instances".
ALTER TABLE workflow_instances ADD COLUMN owner TEXT;
ALTER TABLE workflow_instances ADD COLUMN owner_gen BIGINT NOT NULL DEFAULT 0;
CREATE INDEX workflow_instances_owner ON workflow_instances (owner, state);
-- 1: this attempt replaced one lost with its worker; it does not use up a retry.
ALTER TABLE task_instances ADD COLUMN failover BIGINT NOT NULL DEFAULT 0;
-- Plugin components by the SHA-256 of their bytes, so a worker fetches what it lacks.
CREATE TABLE plugin_blobs (
    sha256 TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
