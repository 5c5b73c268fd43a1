-- The cluster proxy's own tables (a proxy's store also has the users, tokens, projects
-- and permissions of 0004). Keep in step with ../postgres/0013_proxy.sql.
-- Each cluster's number qualifies the ids of its instances and task instances at the
-- proxy (number * 10^12 + id), so it never changes once given.
CREATE TABLE proxy_clusters (
    name TEXT PRIMARY KEY,
    number BIGINT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
-- The outbox: a run is written here before the proxy answers, then forwarded with
-- its key as Idempotency-Key until a cluster acknowledges it.
CREATE TABLE proxy_runs (
    run_key TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    workflow TEXT NOT NULL,
    body TEXT NOT NULL,
    user_name TEXT NOT NULL,
    -- pending, placed or failed
    state TEXT NOT NULL,
    cluster TEXT,
    outcome TEXT,
    remote_instance BIGINT,
    remote_queued BIGINT,
    attempts BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX proxy_runs_pending ON proxy_runs (state, created_at);
CREATE TABLE proxy_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    action TEXT NOT NULL,
    cluster TEXT,
    status BIGINT NOT NULL,
    result TEXT NOT NULL
);
-- Global schedules: fired by the proxy to the cluster its routing picks at fire time;
-- next_fire_at moves by compare-and-set, so one fire time fires once.
CREATE TABLE proxy_schedules (
    project TEXT NOT NULL,
    workflow TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    params TEXT NOT NULL,
    online BIGINT NOT NULL,
    next_fire_at BIGINT,
    last_fire_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project, workflow)
);
-- Routes set through the proxy's API (PUT /api/v1/routes); they win over proxy.toml's
-- for the same project and workflow ('' for a project's own route).
CREATE TABLE proxy_routes (
    project TEXT NOT NULL,
    workflow TEXT NOT NULL,
    route TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project, workflow)
);
