-- Shoal's initial schema (PostgreSQL). Keep in step with ../sqlite/0001_initial.sql.
-- Times are milliseconds since the Unix epoch; JSON is stored as TEXT.
CREATE TABLE workflow_definitions (
    id BIGSERIAL PRIMARY KEY,
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    current_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project, name)
);
CREATE TABLE workflow_definition_versions (
    definition_id BIGINT NOT NULL REFERENCES workflow_definitions (id),
    version BIGINT NOT NULL,
    spec TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (definition_id, version)
);
CREATE TABLE workflow_instances (
    id BIGSERIAL PRIMARY KEY,
    definition_id BIGINT NOT NULL REFERENCES workflow_definitions (id),
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    schedule_time BIGINT NOT NULL,
    startup_params TEXT NOT NULL,
    start_tasks TEXT NOT NULL,
    parent_task_instance_id BIGINT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX workflow_instances_state ON workflow_instances (state);
CREATE TABLE task_instances (
    id BIGSERIAL PRIMARY KEY,
    workflow_instance_id BIGINT NOT NULL REFERENCES workflow_instances (id),
    task_name TEXT NOT NULL,
    task_type TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    state TEXT NOT NULL,
    host TEXT,
    plugin_version TEXT,
    handle TEXT,
    message TEXT NOT NULL,
    out_params TEXT NOT NULL,
    log_path TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX task_instances_workflow ON task_instances (workflow_instance_id);
CREATE TABLE workflow_events (
    id BIGSERIAL PRIMARY KEY,
    workflow_instance_id BIGINT NOT NULL REFERENCES workflow_instances (id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (workflow_instance_id, seq)
);
CREATE TABLE commands (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    workflow_instance_id BIGINT,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    taken_at BIGINT
);
CREATE INDEX commands_pending ON commands (taken_at, id);
