//! Content for frontends, and the publish workflow.
//!
//! Invariants:
//! - Readers get the published version unless they ask for the draft (`draft: true`)
//!   and may read the document; a published document is readable without access to
//!   it (anonymously when `content.anonymous_read` allows it).
//! - Publishing saves a version and points the document at it in that order, so the
//!   published pointer always names a stored version.
//! - Writing a body through the API (`set_body`) is a CRDT change merged with live
//!   edits, never an overwrite of the stored state.

use uuid::Uuid;

use crate::auth::Principal;
use crate::auth::policy::{self, Access};
use crate::bus::DocumentChange;
use crate::content::{self, Body, BodyInput};
use crate::documents::{self, DocStatus, Document};
use crate::error::{Error, Result};
use crate::plugins::{Hook, services};
use crate::state::AppState;
use crate::store::Version;
use crate::versions;

/// Which content a read shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The published version (title and body as published).
    Published,
    /// The live document (for callers who may read drafts).
    Live,
}

/// A document as one read shows it.
#[derive(Debug, Clone)]
pub struct Readable {
    pub doc: Document,
    pub access: Access,
    pub view: View,
}

pub enum Key<'a> {
    Id(Uuid),
    Slug(&'a str),
}

/// Whether readers without access see the document: published, with a version.
pub fn is_public(doc: &Document) -> bool {
    doc.status == DocStatus::Published && doc.published_version_id.is_some()
}

/// Reads a document for a frontend: the published view, or the live one with `draft`.
pub async fn read(app: &AppState, who: &Principal, key: Key<'_>, draft: bool) -> Result<Readable> {
    let me = who.user().map(|u| u.id);
    let found = match key {
        Key::Id(id) => app.store.document_by_id(id, me).await?,
        Key::Slug(slug) => app.store.document_by_slug(slug, me).await?,
    };
    let (doc, grant) = found.ok_or(Error::NotFound("document"))?;
    let access = policy::document_access(who, doc.owner_id, grant);
    if draft {
        policy::require(who, access, Access::Read)?;
        return Ok(Readable {
            doc,
            access,
            view: View::Live,
        });
    }
    if access < Access::Read {
        if matches!(who, Principal::Anonymous) && !app.config.content.anonymous_read {
            return Err(Error::Unauthenticated);
        }
        if !is_public(&doc) {
            return Err(Error::NotFound("document"));
        }
    }
    Ok(Readable {
        doc,
        access,
        view: View::Published,
    })
}

/// The published version, if any.
pub async fn published_version(app: &AppState, doc: &Document) -> Result<Option<Version>> {
    match doc.published_version_id {
        Some(id) if doc.status == DocStatus::Published => Ok(app.store.version_by_id(id).await?),
        _ => Ok(None),
    }
}

/// The body a read shows: the published version's, or the live document's.
pub async fn body(app: &AppState, r: &Readable) -> Result<Option<Body>> {
    match r.view {
        View::Live => Ok(Some(live_body(app, r.doc.id).await?)),
        View::Published => match published_version(app, &r.doc).await? {
            Some(v) => Ok(Some(versions::body(app, v.id).await?)),
            None => Ok(None),
        },
    }
}

/// The body as delivered to a frontend: [`body`], with its HTML passed through the
/// `render` plugins and sanitized again (a plugin never delivers what the sanitizer
/// would not let through).
pub async fn delivered_body(app: &AppState, who: &Principal, r: &Readable) -> Result<Option<Body>> {
    let Some(body) = body(app, r).await? else {
        return Ok(None);
    };
    if !app.plugins.wants(Hook::Render).await {
        return Ok(Some(body));
    }
    let caller = services::caller(app, who);
    let record = services::record(&r.doc, None, &body, "{}");
    let html = record.body_html.clone();
    match app.plugins.run_render(&caller, &record, &html).await {
        Some(rendered) => {
            let clean = tokio::task::spawn_blocking(move || content::sanitize_rendered(&rendered))
                .await
                .map_err(anyhow::Error::from)?;
            Ok(Some(body.with_html(clean)))
        }
        None => Ok(Some(body)),
    }
}

/// The live document's durable body.
pub async fn live_body(app: &AppState, document_id: Uuid) -> Result<Body> {
    versions::decode_body(app.collab.durable_state(document_id).await?).await
}

/// Writes a body into the live document, block by block (see
/// [`content::merge_blocks`]): blocks equal to the live ones are untouched, so editors
/// typing in them keep their edits. With `base` (the body the caller read and edited),
/// only what the caller changed from `base` is applied, so edits made since the read
/// are kept even in the blocks the caller sent back unchanged. Stored and broadcast
/// like any update before this returns.
pub async fn set_body(
    app: &AppState,
    who: &Principal,
    document_id: Uuid,
    input: BodyInput,
    base: Option<BodyInput>,
) -> Result<Body> {
    let visible = documents::get(&app.store, who, document_id).await?;
    policy::require(who, visible.access, Access::Write)?;
    let (target, base) = tokio::task::spawn_blocking(move || {
        let target = content::parse_input(input)?;
        let base = base
            .map(content::parse_input)
            .transpose()
            .map_err(|e| Error::validation(format!("base.{}", e.path), e.message))?;
        Ok::<_, Error>((target, base))
    })
    .await
    .map_err(anyhow::Error::from)??;
    let author = who.user().map(|u| u.id);
    let edited = app
        .collab
        .edit(document_id, author, move |txn| {
            content::merge_blocks(txn, base.as_ref(), &target)
        })
        .await
        .map_err(versions::edit_error)?;
    versions::decode_body(edited.state).await
}

/// Saves a version of the live document and makes it the published one.
pub async fn publish(app: &AppState, who: &Principal, document_id: Uuid, label: Option<&str>) -> Result<Document> {
    let visible = documents::get(&app.store, who, document_id).await?;
    policy::require_publisher(who, visible.access)?;
    if visible.doc.status == DocStatus::Archived {
        return Err(Error::validation(
            "status",
            "archived documents are not published; unarchive it first",
        ));
    }
    let label = label.map(str::trim).filter(|l| !l.is_empty()).unwrap_or("Published");
    let label = versions::validate_label(label)?;
    let plugins = &app.plugins;
    let mut doc = visible.doc.clone();
    let mut state = app.collab.durable_state(document_id).await?;
    if plugins.wants(Hook::BeforePublish).await {
        let caller = services::caller(app, who);
        let body = versions::decode_body(state.clone()).await?;
        let before = services::record(&doc, None, &body, "{}");
        if let Some(changed) = plugins
            .run_outcome(Hook::BeforePublish, &caller, before.clone(), None)
            .await?
        {
            let (d, s) = versions::apply_plugin_changes(app, who, &doc, &before, &changed).await?;
            doc = d;
            if let Some(s) = s {
                state = s;
            }
        }
    }
    let version = versions::store_version(app, who, &doc, &label, state, None).await?;
    let doc = app
        .store
        .set_published(document_id, Some(version.id), DocStatus::Published)
        .await?
        .ok_or(Error::NotFound("document"))?;
    app.collab
        .events()
        .document_changed(document_id, DocumentChange::Published);
    if plugins.wants(Hook::AfterPublish).await {
        let body = versions::body(app, version.id).await?;
        let record = services::record(&doc, u32::try_from(version.number).ok(), &body, &version.fields);
        plugins.after_publish(services::caller(app, who), record);
    }
    Ok(doc)
}

/// Takes a document out of publication: readers without access no longer see it.
pub async fn unpublish(app: &AppState, who: &Principal, document_id: Uuid) -> Result<Document> {
    let visible = documents::get(&app.store, who, document_id).await?;
    policy::require_publisher(who, visible.access)?;
    let doc = app
        .store
        .set_published(document_id, None, DocStatus::Draft)
        .await?
        .ok_or(Error::NotFound("document"))?;
    app.collab
        .events()
        .document_changed(document_id, DocumentChange::Unpublished);
    Ok(doc)
}
