//! Users and their API tokens. Admins create users and tokens for anyone; a user may
//! create and revoke their own tokens. A token is shown once, when created.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shoal_store::{TokenRow, UserRow};
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::{Caller, Role, new_token};
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserBody {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

impl From<UserRow> for User {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id,
            name: u.name,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct TokenBody {
    /// A label to tell tokens apart.
    #[serde(default)]
    pub name: Option<String>,
    /// Lifetime in seconds; none means the token does not expire.
    #[serde(default)]
    pub expires_in_s: Option<i64>,
}

/// A freshly created token: the only time its value is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewToken {
    pub id: i64,
    pub user: String,
    pub token: String,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl From<TokenRow> for Token {
    fn from(t: TokenRow) -> Self {
        Self {
            id: t.id,
            name: t.name,
            expires_at: t.expires_at,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<User>), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody)))]
pub async fn list_users(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<User>>> {
    caller.require_admin()?;
    Ok(Json(
        state
            .store()
            .users()
            .await?
            .into_iter()
            .map(User::from)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserBody,
    responses((status = 201, body = User), (status = 403, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody)))]
pub async fn create_user(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<UserBody>,
) -> ApiResult<(StatusCode, Json<User>)> {
    caller.require_admin()?;
    check_name("name", &body.name)?;
    let user = state
        .store()
        .create_user(&body.name, body.role.as_str())
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("user `{}` exists", body.name)))?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[utoipa::path(post, path = "/api/v1/users/{user}/tokens", tag = "users", request_body = TokenBody,
    params(("user" = String, Path, description = "User name")),
    responses((status = 201, body = NewToken), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub async fn create_token(
    State(state): State<ApiState>,
    caller: Caller,
    Path(user): Path<String>,
    body: Option<Json<TokenBody>>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    if user != caller.name {
        caller.require_admin()?;
    }
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let row = state
        .store()
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
        .map(|s| shoal_store::now_ms() + s.saturating_mul(1000));
    Ok((
        StatusCode::CREATED,
        Json(issue_token(&state, &row, body.name.as_deref(), expires_at).await?),
    ))
}

/// Create a token for `user` and return it (the only time it is seen).
pub async fn issue_token(
    state: &ApiState,
    user: &UserRow,
    name: Option<&str>,
    expires_at: Option<i64>,
) -> ApiResult<NewToken> {
    let (token, hash) = new_token();
    let row = state
        .store()
        .create_token(user.id, name.unwrap_or("api"), &hash, expires_at)
        .await?;
    Ok(NewToken {
        id: row.id,
        user: user.name.clone(),
        token,
        expires_at,
    })
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "users",
    responses((status = 200, body = Vec<Token>), (status = 401, body = crate::ErrorBody)))]
pub async fn my_tokens(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Token>>> {
    Ok(Json(
        state
            .store()
            .tokens_of(caller.user_id)
            .await?
            .into_iter()
            .map(Token::from)
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "users",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 204), (status = 404, body = crate::ErrorBody)))]
pub async fn revoke_token(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let owner = (!caller.admin).then_some(caller.user_id);
    if state.store().revoke_token(id, owner).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no active token {id} of yours")))
    }
}

/// Names of users, projects, secrets and channels: letters, digits, `-`, `_`, `.`.
pub(crate) fn check_name(field: &str, name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "{field}: `{name}` must be 1-128 letters, digits, `-`, `_` or `.`"
        )))
    }
}
