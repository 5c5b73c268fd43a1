//! Who a project's task processes run as, and whether the project may run them at all.
//!
//! In server mode both are an admin's decision kept on the project row (DolphinScheduler's
//! tenant model): a project runs task types holding the `process` capability only once an
//! admin allowed it, and its processes run as its tenant's OS user. On one's own machine
//! (embedded mode) the operator is the user, so every project may.

use super::Master;

/// The process settings a run's tasks get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProjectTenancy {
    pub tenant: Option<String>,
    pub process_allowed: bool,
}

impl Master {
    /// The tenancy of `project`, read once per loaded instance.
    pub(crate) async fn project_tenancy(&self, project: &str) -> ProjectTenancy {
        if !self.inner.config.project_process_gate {
            return ProjectTenancy {
                tenant: None,
                process_allowed: true,
            };
        }
        match self.store().project(project).await {
            Ok(Some(row)) => ProjectTenancy {
                tenant: row.tenant,
                process_allowed: row.allow_process != 0,
            },
            Ok(None) => ProjectTenancy {
                tenant: None,
                process_allowed: false,
            },
            Err(e) => {
                // Refusing is the safe answer: the task fails saying processes are not allowed.
                tracing::warn!(project, "cannot read the project's tenancy: {e}");
                ProjectTenancy {
                    tenant: None,
                    process_allowed: false,
                }
            }
        }
    }
}
