//! Who may do what to a document: the one place these rules live.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Principal, Role, TokenScope};
use crate::error::{Error, Result};

/// A per-document grant (the `document_access` table). The owner needs none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "lowercase")]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum Grant {
    Editor,
    Viewer,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Editor => "editor",
            Grant::Viewer => "viewer",
        }
    }
}

impl TryFrom<String> for Grant {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "editor" => Ok(Grant::Editor),
            "viewer" => Ok(Grant::Viewer),
            _ => Err(format!("unknown grant `{s}`")),
        }
    }
}

/// What a principal may do with one document, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    None,
    /// Read metadata and content.
    Read,
    /// Also edit content and metadata.
    Write,
    /// Also delete and share.
    Manage,
}

/// The access `principal` has to a document owned by `owner` on which it holds `grant`.
pub fn document_access(principal: &Principal, owner: Uuid, grant: Option<Grant>) -> Access {
    let Some(user) = principal.user() else {
        return Access::None;
    };
    let access = if user.role == Role::Admin || user.id == owner {
        Access::Manage
    } else if user.role == Role::Editor || grant == Some(Grant::Editor) {
        Access::Write
    } else if grant == Some(Grant::Viewer) {
        Access::Read
    } else {
        Access::None
    };
    // A read-scoped API token never writes, whatever its user could do.
    match principal {
        Principal::Token {
            scope: TokenScope::Read,
            ..
        } => access.min(Access::Read),
        _ => access,
    }
}

/// Whether the principal sees every document, not only its own and shared ones.
pub fn sees_all_documents(principal: &Principal) -> bool {
    matches!(principal.user(), Some(u) if matches!(u.role, Role::Admin | Role::Editor))
}

/// Fails with NOT_FOUND when the document is invisible (so its existence does not
/// leak), FORBIDDEN when visible but `needed` is more than the principal has.
pub fn require(principal: &Principal, have: Access, needed: Access) -> Result<()> {
    if have >= needed {
        return Ok(());
    }
    if have == Access::None {
        return Err(match principal {
            Principal::Anonymous => Error::Unauthenticated,
            _ => Error::NotFound("document"),
        });
    }
    Err(Error::forbidden(match needed {
        Access::Write => "you may only read this document",
        _ => "only the owner or an admin may do this",
    }))
}

pub fn require_can_create(principal: &Principal) -> Result<()> {
    let user = principal.require_writer()?;
    if user.role == Role::Viewer {
        return Err(Error::forbidden("viewers cannot create documents"));
    }
    Ok(())
}
