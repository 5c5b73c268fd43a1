-- Listing instances by project or workflow, newest first, and filtering them by state:
-- with many stored instances these need an index that serves both the filter and the
-- order, or every page sorts the whole history.
CREATE INDEX workflow_instances_definition_id ON workflow_instances (definition_id, id);
CREATE INDEX workflow_instances_definition_state ON workflow_instances (definition_id, state, id);
