-- The PostgreSQL side of this step (../postgres/0009_hot_path.sql) drops foreign keys
-- and leaves room in task row pages so the hot path writes less. SQLite keeps its
-- tables as they are: one process writes them, its foreign key checks are lookups in
-- the same file, and it has no fill factor to set.
SELECT 1;
