-- External jobs (a Flink job, a CDC pipeline) are listed and acted on by their task
-- instance; only attempts that hold a handle are in this index, so the listing reads a
-- few rows however large task_instances grows.
CREATE INDEX task_instances_with_handle ON task_instances (id) WHERE handle IS NOT NULL;
