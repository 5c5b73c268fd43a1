//! Users and API tokens.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;

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

/// Who the calling token belongs to and what it may do: what a UI needs to show only
/// the buttons that will work.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub name: String,
    pub role: Role,
    /// The caller's level on each project it can see (an admin: `edit` on every one).
    pub projects: std::collections::BTreeMap<String, crate::auth::Level>,
}
