-- Server mode: projects, users and API tokens, per-project permissions, schedules, the
-- queue of runs waiting for their turn (serial run modes, backfills), encrypted secrets,
-- alert channels and plugin versions. Keep in step with ../postgres/0004_server.sql.
CREATE TABLE projects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- 1 = online (may be scheduled); run_mode says what happens when runs overlap.
ALTER TABLE workflow_definitions ADD COLUMN released BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workflow_definitions ADD COLUMN run_mode TEXT NOT NULL DEFAULT 'parallel';
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- Only a SHA-256 of each token is kept: a stolen database yields no usable token.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE project_permissions (
    project_id BIGINT NOT NULL REFERENCES projects (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    level TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    definition_id BIGINT NOT NULL UNIQUE REFERENCES workflow_definitions (id),
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    start_at BIGINT,
    end_at BIGINT,
    missed TEXT NOT NULL,
    online BIGINT NOT NULL,
    params TEXT NOT NULL,
    last_fire_at BIGINT,
    next_fire_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- Runs that wait for a slot: `run_group` names who they queue behind (a serial
-- definition, or one backfill with its concurrency limit). A row is started exactly once:
-- instance_id is set in the same transaction that creates the instance's command.
CREATE TABLE queued_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    definition_id BIGINT NOT NULL REFERENCES workflow_definitions (id),
    run_group TEXT NOT NULL,
    max_running BIGINT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    instance_id BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX queued_runs_waiting ON queued_runs (state, run_group, id);
CREATE TABLE secrets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects (id),
    name TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
CREATE TABLE alert_channels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects (id),
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    events TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
-- Every installed plugin version, by the SHA-256 of its component.
CREATE TABLE plugin_versions (
    plugin_id TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    manifest TEXT NOT NULL,
    installed_at BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, version)
);
-- The version new tasks get, chosen by an operator (install or rollback); absent means
-- the newest.
CREATE TABLE plugin_active (
    plugin_id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    previous TEXT,
    updated_at BIGINT NOT NULL
);
CREATE TABLE plugin_pins (
    definition_id BIGINT NOT NULL REFERENCES workflow_definitions (id),
    plugin_id TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (definition_id, plugin_id)
);
