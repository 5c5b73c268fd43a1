//! Importing a DolphinScheduler export into a project: the one code path behind
//! `POST /projects/{project}/import` and the embedded `shoal import`.
//!
//! [`shoal_dolphin::convert`] turns the export into Shoal YAML; each definition is then
//! loaded and validated exactly as an upload is (against the task types this host has)
//! and only when every one of them passes is anything written, children before
//! parents: definitions (a new version where one exists), their run mode and release
//! state, and their schedules. A bad export leaves the project as it was.

pub use shoal_api_types::imports::{ImportReport, ImportedDefinition};
use shoal_dolphin::{ImportedWorkflow, Options};
use shoal_schedule::CronSchedule;
use shoal_store::{NewSchedule, Store};
use shoal_workflow::TaskTypeCatalog;

#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    /// The export could not be converted (every problem, one per line).
    #[error("{0}")]
    Convert(String),
    /// A converted definition does not load or validate on this host.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] shoal_store::StoreError),
}

/// Convert `json` and store every workflow in it in `project`.
pub async fn import(
    store: &Store,
    catalog: &impl TaskTypeCatalog,
    project: &str,
    json: &str,
    options: &Options,
) -> Result<ImportReport, ImportFailure> {
    let options = Options {
        project: Some(project.to_owned()),
        ..options.clone()
    };
    // The converter's message lists every problem and says when `partial` would help.
    let converted = shoal_dolphin::convert(json, &options)
        .map_err(|e| ImportFailure::Convert(e.to_string()))?;
    let mut warnings = converted.warnings.clone();

    // Everything is checked before anything is written.
    let mut checked = Vec::with_capacity(converted.workflows.len());
    let mut problems = Vec::new();
    for wf in &converted.workflows {
        let origin = std::path::PathBuf::from(format!("{}.yaml", wf.name));
        match shoal_workflow::load_uploaded(&wf.yaml, &origin) {
            Ok(loaded) => {
                let found = shoal_workflow::validate(&loaded, catalog).await;
                problems.extend(found.iter().map(ToString::to_string));
                warnings.extend(loaded.warnings.iter().map(ToString::to_string));
                if let Some(s) = &wf.schedule
                    && let Err(e) = schedule_of(s)
                {
                    problems.push(format!("workflow `{}`: schedule: {e}", wf.name));
                }
                checked.push((wf, loaded));
            }
            Err(
                shoal_workflow::UploadError::References(d)
                | shoal_workflow::UploadError::Invalid(d),
            ) => problems.push(d.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(ImportFailure::Invalid(problems.join("\n")));
    }

    let mut report = Vec::with_capacity(checked.len());
    for (wf, loaded) in checked {
        report.push(save(store, project, wf, &loaded.workflow).await?);
    }
    Ok(ImportReport {
        workflows: report,
        warnings,
    })
}

struct Window {
    cron: CronSchedule,
    start: Option<i64>,
    end: Option<i64>,
}

fn schedule_of(s: &shoal_dolphin::ImportedSchedule) -> Result<Window, String> {
    let instant = |t: &Option<String>,
                   field: &str|
     -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
        t.as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|e| format!("{field} `{t}`: {e}"))
            })
            .transpose()
    };
    let start = instant(&s.start, "start")?;
    let end = instant(&s.end, "end")?;
    let cron = CronSchedule::new(&s.cron, &s.timezone)
        .and_then(|c| c.between(start, end))
        .map_err(|e| e.to_string())?;
    Ok(Window {
        cron,
        start: start.map(|t| t.timestamp_millis()),
        end: end.map(|t| t.timestamp_millis()),
    })
}

async fn save(
    store: &Store,
    project: &str,
    wf: &ImportedWorkflow,
    definition: &shoal_workflow::WorkflowDefinition,
) -> Result<ImportedDefinition, ImportFailure> {
    let spec = serde_json::to_value(definition).expect("a definition serializes");
    let saved = store
        .save_definition(project, &definition.name, &spec, &wf.yaml)
        .await?;
    store
        .set_run_mode(saved.definition_id, wf.run_mode.as_str())
        .await?;
    store.set_released(saved.definition_id, wf.online).await?;
    let mut schedule = None;
    if let Some(s) = &wf.schedule {
        let window = schedule_of(s).map_err(ImportFailure::Invalid)?;
        // A schedule may be online only while its definition is.
        let online = s.online && wf.online;
        let next = online
            .then(|| {
                window
                    .cron
                    .next_after(chrono::Utc::now())
                    .map(|t| t.timestamp_millis())
            })
            .flatten();
        store
            .put_schedule(&NewSchedule {
                definition_id: saved.definition_id,
                cron: window.cron.expression().to_owned(),
                timezone: s.timezone.clone(),
                start_at: window.start,
                end_at: window.end,
                missed: "skip".into(),
                online,
                params: "{}".into(),
                next_fire_at: next,
            })
            .await?;
        schedule = Some(format!(
            "{} ({}){}",
            s.cron,
            s.timezone,
            if online { ", online" } else { ", offline" }
        ));
    }
    Ok(ImportedDefinition {
        name: definition.name.clone(),
        version: saved.version,
        created: saved.created,
        online: wf.online,
        run_mode: wf.run_mode.as_str().to_owned(),
        schedule,
    })
}
