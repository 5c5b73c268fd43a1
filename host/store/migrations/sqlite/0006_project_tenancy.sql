-- Who a project's task processes run as and whether it may run them at all: an admin's
-- decision (DolphinScheduler's tenant), off until an admin allows it.
ALTER TABLE projects ADD COLUMN tenant TEXT;
ALTER TABLE projects ADD COLUMN allow_process BIGINT NOT NULL DEFAULT 0;
