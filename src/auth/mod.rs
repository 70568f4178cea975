//! Users, passwords, session tokens (JWT), API tokens, roles and per-document access.
//!
//! Invariant: every interface (GraphQL, REST, WebSocket) turns its credentials into a
//! [`Principal`] with [`Auth::authenticate`], and every decision about a document goes
//! through [`policy`]. No interface checks roles by itself.

pub mod access;
mod jwt;
mod password;
pub mod policy;
mod service;
mod throttle;

pub use access::{AccessChanges, Credential};
pub use jwt::{Claims, JwtKeys};
pub use policy::{Access, Grant};
pub use service::{API_TOKEN_PREFIX, Auth, NewApiToken, RegisterInput, create_user};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user's global role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "lowercase")]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Everything, including user and plugin administration.
    Admin,
    /// Creates documents and edits every document.
    Editor,
    /// Creates documents; edits their own and those shared with them.
    Author,
    /// Reads the documents shared with them.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Author => "author",
            Role::Viewer => "viewer",
        }
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "admin" => Role::Admin,
            "editor" => Role::Editor,
            "author" => Role::Author,
            "viewer" => Role::Viewer,
            _ => return Err(format!("unknown role `{s}`")),
        })
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// What an API token may do on behalf of its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "lowercase")]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum TokenScope {
    /// Queries only.
    Read,
    /// Everything the user may do.
    Write,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        }
    }
}

impl TryFrom<String> for TokenScope {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "read" => Ok(TokenScope::Read),
            "write" => Ok(TokenScope::Write),
            _ => Err(format!("unknown token scope `{s}`")),
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    pub id: Uuid,
    #[serde(skip)]
    pub user_id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub scope: TokenScope,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Who is calling: nobody, a signed-in user, or an API token acting for a user.
#[derive(Debug, Clone, Default)]
pub enum Principal {
    #[default]
    Anonymous,
    User(User),
    Token {
        user: User,
        scope: TokenScope,
    },
}

impl Principal {
    pub fn user(&self) -> Option<&User> {
        match self {
            Principal::Anonymous => None,
            Principal::User(u) | Principal::Token { user: u, .. } => Some(u),
        }
    }

    pub fn require_user(&self) -> crate::error::Result<&User> {
        self.user().ok_or(crate::error::Error::Unauthenticated)
    }

    /// The user, provided this principal may change things (a read-scoped API token may not).
    pub fn require_writer(&self) -> crate::error::Result<&User> {
        match self {
            Principal::Token {
                scope: TokenScope::Read,
                ..
            } => Err(crate::error::Error::forbidden("this API token has read scope only")),
            p => p.require_user(),
        }
    }
}
