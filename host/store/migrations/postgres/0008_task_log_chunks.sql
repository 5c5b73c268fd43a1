-- Task logs shipped from remote workers (distributed mode). Keep in step with
-- ../sqlite/0008_task_log_chunks.sql.
--
-- A worker writes a task's log to its own disk and ships it piece by piece through the
-- update stream; the owning master stores each piece here, so the API can serve the log
-- of a task that ran elsewhere, while it runs and after its node is gone. A piece is
-- (task instance, byte range of the worker's log file); a piece sent twice is stored
-- once. `last` marks the piece that ends the log (the attempt ended and its node
-- shipped everything).
CREATE TABLE task_log_chunks (
    task_instance_id BIGINT NOT NULL,
    start_offset BIGINT NOT NULL,
    next_offset BIGINT NOT NULL,
    text TEXT NOT NULL,
    last BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (task_instance_id, start_offset)
);
