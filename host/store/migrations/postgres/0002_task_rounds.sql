-- A rerun starts the instance's tasks afresh; earlier rows stay as history but no longer
-- count as the tasks' current state.
ALTER TABLE task_instances ADD COLUMN archived BIGINT NOT NULL DEFAULT 0;
CREATE INDEX workflow_instances_definition ON workflow_instances (definition_id, schedule_time);
