-- Datasources: a project's named database connections for SQL tasks. The spec (type,
-- host, port, database, user, options) is JSON; the password is sealed like a secret
-- (nonce + ciphertext, bound to the project and name), so the database alone never
-- reveals it.
CREATE TABLE datasources (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id),
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
