//! Who is calling, and what they may do.
//!
//! Every request but `/health` and `/openapi.json` carries `Authorization: Bearer TOKEN`.
//! Tokens are random 256-bit strings handed out once; the store keeps only their SHA-256,
//! so a leaked database yields no usable token. Admins may do anything; users act on a
//! project through a permission level: `read` < `operate` (runs and instance
//! operations) < `edit` (definitions, schedules, secrets, alert channels, permissions).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::ApiState;
use crate::error::ApiError;

pub use shoal_api_types::auth::{Level, Role};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: i64,
    pub name: String,
    pub admin: bool,
}

/// A new random token (shown once) and the hash the store keeps.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS random source works");
    let token = format!("shoal_{}", hex::encode(bytes));
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A router state that holds users and tokens: a server's, or the cluster proxy's.
pub trait AuthStore: Send + Sync {
    fn auth_store(&self) -> &shoal_store::Store;
}

impl AuthStore for ApiState {
    fn auth_store(&self) -> &shoal_store::Store {
        self.store()
    }
}

impl<S: AuthStore> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        authenticate(state.auth_store(), &parts.headers).await
    }
}

/// The caller a request's `Authorization: Bearer TOKEN` names, checked against `store`
/// (a server's, or the cluster proxy's own).
pub async fn authenticate(
    store: &shoal_store::Store,
    headers: &axum::http::HeaderMap,
) -> Result<Caller, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthenticated)?;
    let (user, row) = store
        .token_user(&hash_token(token))
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let now = shoal_store::now_ms();
    if row.revoked_at.is_some() || row.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::Unauthenticated);
    }
    Ok(Caller {
        user_id: user.id,
        admin: user.role == Role::Admin.as_str(),
        name: user.name,
    })
}

impl Caller {
    /// Refuse unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs the admin role".into()))
        }
    }

    /// Refuse unless the caller holds at least `level` on `project`. A project the caller
    /// cannot see answers the same as one that does not exist, so names do not leak.
    pub async fn require(
        &self,
        state: &ApiState,
        project: &str,
        level: Level,
    ) -> Result<(), ApiError> {
        self.require_in(state.store(), project, level).await
    }

    /// [`Caller::require`] against any store holding users and permissions.
    pub async fn require_in(
        &self,
        store: &shoal_store::Store,
        project: &str,
        level: Level,
    ) -> Result<(), ApiError> {
        if self.admin {
            return Ok(());
        }
        let held = store
            .permission(project, self.user_id)
            .await?
            .as_deref()
            .and_then(Level::parse);
        match held {
            Some(h) if h >= level => Ok(()),
            _ => Err(ApiError::Forbidden(format!(
                "you need `{}` permission on project `{project}`",
                level.as_str()
            ))),
        }
    }
}

/// The caller, its role and its level on every project it can see, from `store` (a
/// server's, or the cluster proxy's own).
pub async fn me(
    store: &shoal_store::Store,
    caller: &Caller,
) -> Result<shoal_api_types::users::Me, ApiError> {
    let projects = if caller.admin {
        store
            .projects()
            .await?
            .into_iter()
            .map(|p| (p.name, Level::Edit))
            .collect()
    } else {
        store
            .permissions_of_user(caller.user_id)
            .await?
            .into_iter()
            .filter_map(|(p, l)| Some((p, Level::parse(&l)?)))
            .collect()
    };
    Ok(shoal_api_types::users::Me {
        name: caller.name.clone(),
        role: if caller.admin {
            Role::Admin
        } else {
            Role::User
        },
        projects,
    })
}

/// Who holds what on `project`, for a caller allowed to change it (`edit`, or admin).
pub async fn project_permissions(
    store: &shoal_store::Store,
    caller: &Caller,
    project: &str,
) -> Result<Vec<shoal_api_types::projects::Permission>, ApiError> {
    caller.require_in(store, project, Level::Edit).await?;
    if store.project(project).await?.is_none() {
        return Err(ApiError::NotFound(format!("no project `{project}`")));
    }
    Ok(store
        .project_permissions(project)
        .await?
        .into_iter()
        .filter_map(|(user, l)| {
            Some(shoal_api_types::projects::Permission {
                user,
                level: Level::parse(&l)?,
            })
        })
        .collect())
}

/// Create the first admin when `store` has no user yet: with `configured` as its token
/// when given, else a new token printed once on stdout. Used by `shoal server` and
/// `shoal proxy` alike.
pub async fn bootstrap_admin(
    store: &shoal_store::Store,
    configured: Option<&str>,
) -> Result<(), shoal_store::StoreError> {
    if store.user_count().await? > 0 {
        return Ok(());
    }
    let Some(user) = store.create_user("admin", Role::Admin.as_str()).await? else {
        return Ok(());
    };
    match configured {
        Some(token) => {
            store
                .create_token(user.id, "bootstrap", &hash_token(token), None)
                .await?;
            eprintln!("created user `admin` with the configured admin token");
        }
        None => {
            let (token, hash) = new_token();
            store
                .create_token(user.id, "bootstrap", &hash, None)
                .await?;
            println!("first admin token (shown once, keep it): {token}");
        }
    }
    Ok(())
}
