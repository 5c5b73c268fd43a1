//! The proxy's own users, tokens, projects and permissions: the same rules as a
//! cluster's (admins manage users; a token never begets one that outlives it; project
//! levels read < operate < edit). A project created here is created on every cluster
//! too, since any of them may run its workflows.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use shoal_api::ApiError;
use shoal_api::auth::{Caller, Level, new_token};
use shoal_api_types::projects::{Permission, PermissionBody, Project, ProjectBody, TenancyBody};
use shoal_api_types::users::{Me, NewToken, Token, TokenBody, User, UserBody};
use shoal_store::ProjectRow;

use super::ApiResult;
use crate::Proxy;
use crate::upstream::Body;

fn check_name(field: &str, name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "{field}: `{name}`: 1-64 letters, digits, `-`, `_` or `.`"
        )))
    }
}

/// The caller and its levels on the proxy's projects (the proxy's own users).
pub(super) async fn me(State(p): State<Proxy>, caller: Caller) -> ApiResult<Json<Me>> {
    Ok(Json(shoal_api::auth::me(p.store().store(), &caller).await?))
}

/// Who holds what on a project, at the proxy.
pub(super) async fn permissions(
    State(p): State<Proxy>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<Permission>>> {
    Ok(Json(
        shoal_api::auth::project_permissions(p.store().store(), &caller, &project).await?,
    ))
}

pub(super) async fn list_users(
    State(p): State<Proxy>,
    caller: Caller,
) -> ApiResult<Json<Vec<User>>> {
    caller.require_admin()?;
    let users = p.store().store().users().await?;
    Ok(Json(
        users
            .into_iter()
            .map(|u| User {
                id: u.id,
                name: u.name,
                role: u.role,
                created_at: u.created_at,
            })
            .collect(),
    ))
}

pub(super) async fn create_user(
    State(p): State<Proxy>,
    caller: Caller,
    Json(body): Json<UserBody>,
) -> ApiResult<(StatusCode, Json<User>)> {
    caller.require_admin()?;
    check_name("name", &body.name)?;
    let u = p
        .store()
        .store()
        .create_user(&body.name, body.role.as_str())
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("user `{}` exists", body.name)))?;
    p.audit(&caller.name, "POST /users", None, 201, &body.name)
        .await;
    Ok((
        StatusCode::CREATED,
        Json(User {
            id: u.id,
            name: u.name,
            role: u.role,
            created_at: u.created_at,
        }),
    ))
}

pub(super) async fn create_token(
    State(p): State<Proxy>,
    caller: Caller,
    headers: HeaderMap,
    Path(user): Path<String>,
    body: Option<Json<TokenBody>>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    if user != caller.name {
        caller.require_admin()?;
    }
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let store = p.store().store();
    let row = store
        .user_by_name(&user)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user `{user}`")))?;
    if body.expires_in_s.is_some_and(|s| s <= 0) {
        return Err(ApiError::BadRequest(
            "expires_in_s: must be positive".into(),
        ));
    }
    let expires_at = body
        .expires_in_s
        .map(|s| shoal_store::now_ms().saturating_add(s.saturating_mul(1000)));
    // The token making this request bounds the new one's life, as on a cluster.
    if let Some(limit) = shoal_api::routes::calling_token_expiry(store, &headers).await? {
        shoal_api::routes::outlives_check(expires_at, limit)?;
    }
    let (token, hash) = new_token();
    let t = store
        .create_token(
            row.id,
            body.name.as_deref().unwrap_or("api"),
            &hash,
            expires_at,
        )
        .await?;
    p.audit(
        &caller.name,
        &format!("POST /users/{user}/tokens"),
        None,
        201,
        "token issued",
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(NewToken {
            id: t.id,
            user: row.name,
            token,
            expires_at,
        }),
    ))
}

pub(super) async fn my_tokens(
    State(p): State<Proxy>,
    caller: Caller,
) -> ApiResult<Json<Vec<Token>>> {
    let rows = p.store().store().tokens_of(caller.user_id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|t| Token {
                id: t.id,
                name: t.name,
                expires_at: t.expires_at,
                created_at: t.created_at,
                revoked_at: t.revoked_at,
            })
            .collect(),
    ))
}

pub(super) async fn revoke_token(
    State(p): State<Proxy>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let owner = (!caller.admin).then_some(caller.user_id);
    if p.store().store().revoke_token(id, owner).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no token {id} of yours to revoke"
        )))
    }
}

fn project_view(r: ProjectRow) -> Project {
    Project {
        id: r.id,
        name: r.name,
        description: r.description,
        created_at: r.created_at,
        tenant: r.tenant,
        allow_process: r.allow_process != 0,
        cluster: None,
    }
}

pub(super) async fn list_projects(
    State(p): State<Proxy>,
    caller: Caller,
) -> ApiResult<Json<Vec<Project>>> {
    let store = p.store().store();
    let mut out = Vec::new();
    for r in store.projects().await? {
        if caller.admin || store.permission(&r.name, caller.user_id).await?.is_some() {
            out.push(project_view(r));
        }
    }
    Ok(Json(out))
}

pub(super) async fn get_project(
    State(p): State<Proxy>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Project>> {
    let missing = || ApiError::NotFound(format!("no project `{project}`"));
    caller
        .require_in(p.store().store(), &project, Level::Read)
        .await
        .map_err(|_| missing())?;
    let r = p
        .store()
        .store()
        .project(&project)
        .await?
        .ok_or_else(missing)?;
    Ok(Json(project_view(r)))
}

/// Create a project here and on every reachable cluster (an unreachable one gets it
/// when a definition is first copied there).
pub(super) async fn create_project(
    State(p): State<Proxy>,
    caller: Caller,
    Json(body): Json<ProjectBody>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    check_name("name", &body.name)?;
    let store = p.store().store();
    let row = store
        .create_project(&body.name, &body.description)
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("project `{}` exists", body.name)))?;
    // The creator may edit what they created, as on a cluster.
    if !caller.admin {
        store
            .grant_permission(row.id, caller.user_id, Level::Edit.as_str())
            .await?;
    }
    p.audit(&caller.name, "POST /projects", None, 201, &body.name)
        .await;
    p.broadcast(
        &caller,
        Method::POST,
        "/projects",
        Body::Json(serde_json::json!({"name": body.name, "description": body.description})),
        &[409],
    )
    .await;
    Ok((StatusCode::CREATED, Json(project_view(row))))
}

/// Tenancy is an admin's: kept here (copied with definitions) and written to every
/// cluster now.
pub(super) async fn tenancy(
    State(p): State<Proxy>,
    caller: Caller,
    Path(project): Path<String>,
    Json(body): Json<TenancyBody>,
) -> ApiResult<Json<Project>> {
    caller.require_admin()?;
    let store = p.store().store();
    let row = store
        .project(&project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project `{project}`")))?;
    if body.tenant.is_some() {
        return Err(ApiError::BadRequest(
            "tenant: OS users are each cluster's own; set it on the cluster".into(),
        ));
    }
    if let Some(allow) = body.allow_process {
        store
            .set_project_tenancy(&project, row.tenant.as_deref(), allow)
            .await?;
    }
    let path = format!("/projects/{}/tenancy", crate::outbox::seg(&project));
    p.audit(&caller.name, &format!("PATCH {path}"), None, 200, "proxy")
        .await;
    let failures = p
        .broadcast(
            &caller,
            Method::PATCH,
            &path,
            Body::Json(serde_json::to_value(&body).unwrap_or_default()),
            &[],
        )
        .await;
    if !failures.is_empty() {
        return Err(ApiError::Upstream {
            status: 502,
            code: "partial".into(),
            message: format!(
                "saved at the proxy; not on every cluster: {}",
                failures.join("; ")
            ),
        });
    }
    let row = store
        .project(&project)
        .await?
        .ok_or_else(|| ApiError::NotFound(project.clone()))?;
    Ok(Json(project_view(row)))
}

pub(super) async fn grant(
    State(p): State<Proxy>,
    caller: Caller,
    Path((project, user)): Path<(String, String)>,
    Json(body): Json<PermissionBody>,
) -> ApiResult<StatusCode> {
    let store = p.store().store();
    caller.require_in(store, &project, Level::Edit).await?;
    let prow = store
        .project(&project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project `{project}`")))?;
    let urow = store
        .user_by_name(&user)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user `{user}`")))?;
    store
        .grant_permission(prow.id, urow.id, body.level.as_str())
        .await?;
    p.audit(
        &caller.name,
        &format!("PUT /projects/{project}/permissions/{user}"),
        None,
        204,
        body.level.as_str(),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

impl Proxy {
    /// Send one write to every reachable cluster, auditing each; returns what failed
    /// (an answer whose status is in `fine` counts as done, e.g. 409 for "exists").
    pub(crate) async fn broadcast(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Body,
        fine: &[u16],
    ) -> Vec<String> {
        let sends = self.clusters().all().iter().map(|c| {
            let (method, body) = (method.clone(), body.clone());
            async move {
                self.send_audited(&caller.name, c, method, path, body, "ok")
                    .await
            }
        });
        let mut failures = Vec::new();
        for r in futures_util::future::join_all(sends).await {
            if let Err(e) = r
                && !fine.contains(&e.status())
            {
                failures.push(e.to_string());
            }
        }
        failures
    }
}
