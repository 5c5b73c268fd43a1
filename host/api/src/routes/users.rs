//! Users and their API tokens. Admins create users and tokens for anyone; a user may
//! create and revoke their own tokens. A token is shown once, when created. A token
//! never begets one that outlives it: otherwise a short-lived token handed to a job or a
//! colleague could be traded for a permanent one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use shoal_store::{TokenRow, UserRow};

use crate::ApiState;
use crate::auth::{Caller, hash_token, new_token};
use crate::error::{ApiError, ApiResult};
use crate::view::View;
pub use shoal_api_types::users::{Me, NewToken, Token, TokenBody, User, UserBody};

impl crate::view::View<User> for UserRow {
    fn view(self) -> User {
        let u = self;
        User {
            id: u.id,
            name: u.name,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

impl crate::view::View<Token> for TokenRow {
    fn view(self) -> Token {
        let t = self;
        Token {
            id: t.id,
            name: t.name,
            expires_at: t.expires_at,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// The calling token's user, role and level on each project it can see.
#[utoipa::path(get, path = "/api/v1/me", tag = "users",
    responses((status = 200, body = Me), (status = 401, body = crate::ErrorBody)))]
pub async fn me(State(state): State<ApiState>, caller: Caller) -> ApiResult<Json<Me>> {
    Ok(Json(crate::auth::me(state.store(), &caller).await?))
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
            .map(View::view)
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
    Ok((StatusCode::CREATED, Json(user.view())))
}

#[utoipa::path(post, path = "/api/v1/users/{user}/tokens", tag = "users", request_body = TokenBody,
    params(("user" = String, Path, description = "User name")),
    responses((status = 201, body = NewToken), (status = 400, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub async fn create_token(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
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
        .map(|s| shoal_store::now_ms().saturating_add(s.saturating_mul(1000)));
    if let Some(limit) = calling_token_expiry(state.store(), &headers).await? {
        outlives_check(expires_at, limit)?;
    }
    Ok((
        StatusCode::CREATED,
        Json(issue_token(&state, &row, body.name.as_deref(), expires_at).await?),
    ))
}

/// When the token this request came with expires (the `Caller` extractor has already
/// accepted it, so it is present and valid).
/// When the token making this request expires (none: never). Shared with the proxy.
pub async fn calling_token_expiry(
    store: &shoal_store::Store,
    headers: &HeaderMap,
) -> ApiResult<Option<i64>> {
    let Some(token) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Err(ApiError::Unauthenticated);
    };
    let (_, row) = store
        .token_user(&hash_token(token))
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    Ok(row.expires_at)
}

/// Refuse a new token that would outlive the calling token, which expires at `limit`.
pub fn outlives_check(expires_at: Option<i64>, limit: i64) -> ApiResult<()> {
    match expires_at {
        None => Err(ApiError::BadRequest(format!(
            "expires_in_s: this request's token expires (at {limit} ms since the epoch), so it cannot create a token that never expires; give expires_in_s"
        ))),
        Some(t) if t > limit => Err(ApiError::BadRequest(format!(
            "expires_in_s: the new token would expire {} s after the token making this request; a token cannot create one that outlives it",
            (t - limit + 999) / 1000
        ))),
        Some(_) => Ok(()),
    }
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
            .map(View::view)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_cannot_outlive_its_creator() {
        let limit = 10_000;
        assert!(outlives_check(Some(limit), limit).is_ok());
        assert!(outlives_check(Some(limit - 1), limit).is_ok());
        let later = outlives_check(Some(limit + 1500), limit).unwrap_err();
        assert!(later.to_string().contains("2 s after"), "{later}");
        let forever = outlives_check(None, limit).unwrap_err();
        assert!(forever.to_string().contains("never expires"), "{forever}");
    }
}
