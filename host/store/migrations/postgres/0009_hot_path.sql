-- The tables a running workflow writes on every task transition, made cheaper to write
-- (PostgreSQL). Keep in step with ../sqlite/0009_hot_path.sql.
--
-- Measured on 100,000 rows: an event row cost 10.4 us with its foreign key and its
-- serial id, 2.8 us without; a task row update 8-10 us in full pages, 2.5 us with room
-- left in each page (an update then stays on its page and touches no index: a HOT
-- update); a task row insert 11 us with its foreign key, 5.5 us without.
--
-- The foreign keys checked what the writer already guarantees: an instance's event and
-- task rows are written only in a batch that carries the instance's ownership fence (or,
-- single-node, after the batch that inserted the instance), and the only delete (of a
-- definition's runs) removes them before their instances. An event's serial id was
-- never read: (instance, seq) names it, and now is its key.
ALTER TABLE workflow_events DROP CONSTRAINT workflow_events_workflow_instance_id_fkey;
ALTER TABLE workflow_events DROP COLUMN id;
ALTER TABLE workflow_events DROP CONSTRAINT workflow_events_workflow_instance_id_seq_key;
ALTER TABLE workflow_events ADD PRIMARY KEY (workflow_instance_id, seq);

ALTER TABLE task_instances DROP CONSTRAINT task_instances_workflow_instance_id_fkey;
-- A task row is updated two or three times after its insert (placed, running, ended).
ALTER TABLE task_instances SET (fillfactor = 50);
