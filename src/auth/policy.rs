//! Who may do what to a document: the one place these rules live.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Principal, Role, TokenScope};
use crate::documents::DocStatus;
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

/// Editors and admins (by role) may publish, unpublish and take a document out of
/// the published state; authors send documents to review instead.
pub fn is_publisher(principal: &Principal) -> bool {
    matches!(principal.user(), Some(u) if matches!(u.role, Role::Admin | Role::Editor))
        && !matches!(
            principal,
            Principal::Token {
                scope: TokenScope::Read,
                ..
            }
        )
}

/// Publishing and unpublishing: write access and the publisher role.
pub fn require_publisher(principal: &Principal, have: Access) -> Result<()> {
    require(principal, have, Access::Write)?;
    if !is_publisher(principal) {
        return Err(Error::forbidden(
            "only editors and admins may publish or unpublish; move the document to review instead",
        ));
    }
    Ok(())
}

/// The status workflow: draft ⇄ in_review for anyone who may write; leaving
/// `published` for publishers; archiving and unarchiving for publishers and the owner.
/// Entering `published` happens only through `publish`, which saves the version
/// readers get.
pub fn require_status_change(principal: &Principal, have: Access, from: DocStatus, to: DocStatus) -> Result<()> {
    require(principal, have, Access::Write)?;
    if from == to {
        return Ok(());
    }
    if to == DocStatus::Published {
        return Err(Error::validation(
            "status",
            "use `publish` to publish: it saves the version readers get",
        ));
    }
    let allowed = match (from, to) {
        (DocStatus::Published, _) => is_publisher(principal),
        (_, DocStatus::Archived) | (DocStatus::Archived, _) => is_publisher(principal) || have >= Access::Manage,
        _ => true,
    };
    if allowed {
        return Ok(());
    }
    Err(Error::forbidden(format!(
        "only editors and admins may move a document from {} to {}",
        from.as_str(),
        to.as_str()
    )))
}

pub fn require_can_create(principal: &Principal) -> Result<()> {
    let user = principal.require_writer()?;
    if user.role == Role::Viewer {
        return Err(Error::forbidden("viewers cannot create documents"));
    }
    Ok(())
}
