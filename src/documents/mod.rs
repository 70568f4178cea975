//! Document metadata: create, read, list, update with optimistic locking, soft delete,
//! and sharing.
//!
//! Invariant: metadata is last-write-wins with optimistic locking. Every write names
//! the `lock_version` it read; a stale one fails with CONFLICT carrying the current
//! record. Nothing is overwritten silently. Interfaces call these functions and never
//! the store directly for documents, so validation and access rules hold everywhere.

mod cursor;
mod validate;

pub use cursor::{decode_cursor, encode_cursor};
pub use validate::{slugify, validate_slug, validate_title};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Principal;
use crate::auth::policy::{self, Access, Grant};
use crate::bus::{DocumentChange, Events};
use crate::error::{Error, Result};
use crate::plugins::{Hook, services};
use crate::state::AppState;
use crate::store::{DocumentPage, ListQuery, MetadataChange, OrderField, Store, UpdateOutcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "snake_case")]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum DocStatus {
    Draft,
    InReview,
    Published,
    Archived,
}

impl DocStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DocStatus::Draft => "draft",
            DocStatus::InReview => "in_review",
            DocStatus::Published => "published",
            DocStatus::Archived => "archived",
        }
    }
}

impl TryFrom<String> for DocStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "draft" => DocStatus::Draft,
            "in_review" => DocStatus::InReview,
            "published" => DocStatus::Published,
            "archived" => DocStatus::Archived,
            _ => return Err(format!("unknown status `{s}`")),
        })
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub id: Uuid,
    pub title: String,
    pub slug: String,
    #[sqlx(try_from = "String")]
    pub status: DocStatus,
    pub owner_id: Uuid,
    pub lock_version: i64,
    pub published_version_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A document as one caller may see it.
#[derive(Debug, Clone)]
pub struct Visible {
    pub doc: Document,
    pub access: Access,
}

pub struct NewDocument {
    pub title: String,
    pub slug: Option<String>,
}

/// Fields a metadata update may change; `None` leaves the field alone.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocumentPatch {
    pub title: Option<String>,
    pub slug: Option<String>,
    pub status: Option<DocStatus>,
}

pub struct ListArgs {
    pub status: Option<DocStatus>,
    pub owner: Option<Uuid>,
    pub order: OrderField,
    pub descending: bool,
    pub first: Option<i64>,
    pub after: Option<String>,
}

pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;

/// Creates a document. `on-metadata-change` plugins see it first (with an empty slug
/// when none was given) and may change its title and slug, or refuse it.
pub async fn create(app: &AppState, who: &Principal, input: NewDocument) -> Result<Document> {
    let store = &app.store;
    policy::require_can_create(who)?;
    let owner = who.require_user()?.id;
    let mut input = input;
    if app.plugins.wants(Hook::OnMetadataChange).await {
        let now = crate::store::now();
        let proposed = Document {
            id: Uuid::nil(),
            title: input.title.clone(),
            slug: input.slug.clone().unwrap_or_default(),
            status: DocStatus::Draft,
            owner_id: owner,
            lock_version: 0,
            published_version_id: None,
            created_at: now,
            updated_at: now,
        };
        let caller = services::caller(app, who);
        let record = services::metadata_record(&proposed);
        if let Some(changed) = app
            .plugins
            .run_outcome(Hook::OnMetadataChange, &caller, record, None)
            .await?
        {
            input.title = changed.title;
            input.slug = (!changed.slug.is_empty()).then_some(changed.slug);
        }
    }
    let title = validate_title(&input.title)?;
    if let Some(slug) = input.slug {
        validate_slug(&slug)?;
        return store
            .create_document(owner, &title, &slug)
            .await?
            .ok_or_else(|| Error::validation("slug", "already used by another document"));
    }
    // A slug derived from the title gets a numeric suffix until it is free.
    let base = slugify(&title);
    for n in 1..=50u32 {
        let slug = if n == 1 { base.clone() } else { format!("{base}-{n}") };
        if let Some(doc) = store.create_document(owner, &title, &slug).await? {
            return Ok(doc);
        }
    }
    let slug = format!("{base}-{}", &Uuid::new_v4().simple().to_string()[..8]);
    store
        .create_document(owner, &title, &slug)
        .await?
        .ok_or_else(|| Error::validation("slug", "could not find a free slug; give one"))
}

pub async fn get(store: &Store, who: &Principal, id: Uuid) -> Result<Visible> {
    let found = store.document_by_id(id, who.user().map(|u| u.id)).await?;
    visible(who, found)
}

pub async fn get_by_slug(store: &Store, who: &Principal, slug: &str) -> Result<Visible> {
    let found = store.document_by_slug(slug, who.user().map(|u| u.id)).await?;
    visible(who, found)
}

/// What `who` may see of a document as read by the store (`get` reads it, then asks this).
pub fn visible(who: &Principal, found: Option<(Document, Option<Grant>)>) -> Result<Visible> {
    let (doc, grant) = found.ok_or(Error::NotFound("document"))?;
    let access = policy::document_access(who, doc.owner_id, grant);
    policy::require(who, access, Access::Read)?;
    Ok(Visible { doc, access })
}

pub async fn list(store: &Store, who: &Principal, args: ListArgs) -> Result<DocumentPage> {
    let user = who.require_user()?;
    let limit = match args.first {
        None => DEFAULT_PAGE,
        Some(n) if (1..=i64::from(MAX_PAGE)).contains(&n) => n as u32,
        Some(_) => {
            return Err(Error::validation("first", format!("must be between 1 and {MAX_PAGE}")));
        }
    };
    let after = args
        .after
        .as_deref()
        .map(|c| decode_cursor(c, args.order))
        .transpose()?;
    let query = ListQuery {
        status: args.status,
        owner: args.owner,
        visible_to: (!policy::sees_all_documents(who)).then_some(user.id),
        order: args.order,
        descending: args.descending,
        after,
        limit,
    };
    Ok(store.list_documents(&query).await?)
}

/// Applies `patch` if `lock_version` is still current.
/// Updates title, slug and status under optimistic locking. `on-metadata-change`
/// plugins see the record as it would be stored (and the one stored now) and may
/// change its metadata, or refuse the write; what they return is validated like input.
pub async fn update(
    app: &AppState,
    who: &Principal,
    id: Uuid,
    lock_version: i64,
    patch: DocumentPatch,
) -> Result<Document> {
    let store = &app.store;
    let current = get(store, who, id).await?;
    policy::require(who, current.access, Access::Write)?;
    let mut patch = patch;
    if app.plugins.wants(Hook::OnMetadataChange).await {
        let mut proposed = current.doc.clone();
        if let Some(t) = &patch.title {
            proposed.title = t.clone();
        }
        if let Some(s) = &patch.slug {
            proposed.slug = s.clone();
        }
        if let Some(st) = patch.status {
            proposed.status = st;
        }
        let caller = services::caller(app, who);
        let before = services::metadata_record(&proposed);
        let previous = services::metadata_record(&current.doc);
        if let Some(changed) = app
            .plugins
            .run_outcome(Hook::OnMetadataChange, &caller, before.clone(), Some(previous))
            .await?
        {
            if changed.title != before.title || patch.title.is_some() {
                patch.title = Some(changed.title.clone());
            }
            if changed.slug != before.slug || patch.slug.is_some() {
                patch.slug = Some(changed.slug.clone());
            }
            if changed.status != before.status {
                patch.status = Some(DocStatus::try_from(changed.status).map_err(|e| Error::validation("status", e))?);
            }
        }
    }
    if let Some(to) = patch.status {
        policy::require_status_change(who, current.access, current.doc.status, to)?;
    }
    let title = patch.title.as_deref().map(validate_title).transpose()?;
    if let Some(slug) = &patch.slug {
        validate_slug(slug)?;
    }
    let change = MetadataChange {
        title: title.as_deref(),
        slug: patch.slug.as_deref(),
        status: patch.status,
    };
    store_metadata(store, &app.collab.events(), id, lock_version, &change).await
}

/// Writes a metadata change made by the server itself on the caller's behalf (plugins
/// changing title or slug on a save or publish), against the document as read.
pub(crate) async fn write_metadata(app: &AppState, doc: &Document, change: MetadataChange<'_>) -> Result<Document> {
    store_metadata(&app.store, &app.collab.events(), doc.id, doc.lock_version, &change).await
}

async fn store_metadata(
    store: &Store,
    events: &Events,
    id: Uuid,
    lock_version: i64,
    change: &MetadataChange<'_>,
) -> Result<Document> {
    match store.update_document(id, lock_version, change).await? {
        UpdateOutcome::Updated(doc) => {
            events.document_changed(id, DocumentChange::Metadata);
            Ok(doc)
        }
        UpdateOutcome::Stale(doc) => Err(Error::Conflict {
            message: format!(
                "document was changed by someone else (lockVersion {lock_version} is stale, current is {})",
                doc.lock_version
            ),
            current: serde_json::to_value(&doc).map_err(anyhow::Error::from)?,
        }),
        UpdateOutcome::Missing => Err(Error::NotFound("document")),
        UpdateOutcome::SlugTaken => Err(Error::validation("slug", "already used by another document")),
    }
}

pub async fn delete(store: &Store, events: &Events, who: &Principal, id: Uuid) -> Result<()> {
    let current = get(store, who, id).await?;
    policy::require(who, current.access, Access::Manage)?;
    if !store.delete_document(id).await? {
        return Err(Error::NotFound("document"));
    }
    events.document_changed(id, DocumentChange::Deleted);
    Ok(())
}

/// Gives `user_email` a grant on the document, or removes it with `None`.
pub async fn share(store: &Store, who: &Principal, id: Uuid, user_email: &str, grant: Option<Grant>) -> Result<()> {
    let current = get(store, who, id).await?;
    policy::require(who, current.access, Access::Manage)?;
    let granter = who.require_writer()?;
    let email = user_email.trim().to_lowercase();
    let target = store
        .user_by_email(&email)
        .await?
        .ok_or_else(|| Error::validation("userEmail", "no user with this email"))?;
    if target.id == current.doc.owner_id {
        return Err(Error::validation("userEmail", "the owner always has full access"));
    }
    store.set_grant(id, target.id, grant, granter.id).await?;
    Ok(())
}
