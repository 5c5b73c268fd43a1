//! Datasources of a project: checking, sealing and listing them, for the API and for the
//! CLI on the embedded store alike. Passwords go in and never come out: a listing shows
//! where a datasource is, and only the engine opens the password, for the task that
//! names it.

use shoal_model::{DatasourceKind, DatasourceSpec};
use shoal_store::Store;

use crate::secrets::SecretBox;
pub use shoal_api_types::datasources::{DatasourceBody, DatasourceView};

#[derive(Debug, thiserror::Error)]
pub enum DatasourceError {
    /// Every problem, each as `field: message`.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] shoal_store::StoreError),
}

/// Check `body`, seal its password and store it as `name` in the project; true when
/// the datasource is new.
pub async fn put(
    store: &Store,
    sealer: &SecretBox,
    project_id: i64,
    project: &str,
    name: &str,
    body: &DatasourceBody,
) -> Result<bool, DatasourceError> {
    let kind: DatasourceKind = body
        .kind
        .parse()
        .map_err(|e: String| DatasourceError::Invalid(format!("type: {e}")))?;
    let spec = DatasourceSpec {
        kind,
        host: body.host.trim().to_owned(),
        port: body.port,
        database: body.database.trim().to_owned(),
        user: body.user.trim().to_owned(),
        options: body.options.clone(),
    };
    let problems = spec.problems();
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        return Err(DatasourceError::Invalid(text.join("; ")));
    }
    if body.password.as_ref().is_some_and(|p| p.len() > 4096) {
        return Err(DatasourceError::Invalid(
            "password: longer than 4096 bytes".into(),
        ));
    }
    let existing = store
        .datasources(project)
        .await?
        .into_iter()
        .find(|d| d.name == name);
    let (nonce, sealed) = match (&body.password, existing) {
        (Some(password), _) => sealer.seal_datasource_password(project, name, password),
        (None, Some(row)) => (row.nonce, row.ciphertext),
        (None, None) => sealer.seal_datasource_password(project, name, ""),
    };
    let spec = serde_json::to_string(&spec).expect("a spec serializes");
    Ok(store
        .put_datasource(project_id, name, &spec, &nonce, &sealed)
        .await?)
}

/// The project's datasources, without passwords.
pub async fn list(
    store: &Store,
    sealer: &SecretBox,
    project: &str,
) -> Result<Vec<DatasourceView>, DatasourceError> {
    let rows = store.datasources(project).await?;
    rows.into_iter()
        .map(|row| {
            let spec: DatasourceSpec = serde_json::from_str(&row.spec).map_err(|e| {
                DatasourceError::Invalid(format!("datasource `{}`: stored spec: {e}", row.name))
            })?;
            let has_password = sealer
                .open_datasource_password(project, &row.name, &row.nonce, &row.ciphertext)
                .map(|p| !p.is_empty())
                .unwrap_or(true);
            Ok(DatasourceView {
                name: row.name,
                kind: spec.kind.to_string(),
                host: spec.host,
                port: spec.port,
                database: spec.database,
                user: spec.user,
                options: spec.options,
                has_password,
                updated_at: row.updated_at,
            })
        })
        .collect()
}
