//! The body of every error answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code: `unauthenticated`, `forbidden`, `not-found`,
    /// `bad-request`, `invalid-definition`, `conflict`, `too-large`, `method-not-allowed`,
    /// `internal`, `unavailable`.
    pub code: String,
    pub message: String,
}
