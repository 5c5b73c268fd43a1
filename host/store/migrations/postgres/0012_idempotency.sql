-- A run started with an Idempotency-Key keeps it, so the same key finds the same run
-- (started or queued) instead of starting a second one. Keep in step with
-- ../sqlite/0012_idempotency.sql.
ALTER TABLE workflow_instances ADD COLUMN idempotency_key TEXT;
CREATE INDEX workflow_instances_idempotency ON workflow_instances (idempotency_key) WHERE idempotency_key IS NOT NULL;
ALTER TABLE queued_runs ADD COLUMN idempotency_key TEXT;
CREATE INDEX queued_runs_idempotency ON queued_runs (idempotency_key) WHERE idempotency_key IS NOT NULL;
