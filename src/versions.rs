//! Named versions: save, list, read, diff, restore.
//!
//! Invariants:
//! - A version is a copy of the durable state (what the database holds), never of
//!   unacknowledged edits.
//! - Restoring never rewrites history: it is a normal CRDT change to the live
//!   document (every editor sees it at once, concurrent typing merges) recorded as a
//!   new version that names the one it restored.

use uuid::Uuid;

use crate::auth::Principal;
use crate::auth::policy::{self, Access};
use crate::collab::EditError;
use crate::content::{self, Body, diff};
use crate::documents::{self, DocStatus, Document};
use crate::error::{Error, Result};
use crate::plugins::{Hook, Record, services};
use crate::state::AppState;
use crate::store::{MetadataChange, NewVersion, Version};

pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;
const MAX_LABEL: usize = 200;

pub(crate) fn validate_label(label: &str) -> Result<String> {
    let label = label.trim();
    if label.is_empty() {
        return Err(Error::validation("label", "must not be empty"));
    }
    if label.chars().count() > MAX_LABEL {
        return Err(Error::validation(
            "label",
            format!("must be at most {MAX_LABEL} characters"),
        ));
    }
    Ok(label.to_string())
}

/// Saves the document's current durable content as a named version.
pub async fn save(app: &AppState, who: &Principal, document_id: Uuid, label: &str) -> Result<Version> {
    let label = validate_label(label)?;
    let visible = documents::get(&app.store, who, document_id).await?;
    policy::require(who, visible.access, Access::Write)?;
    let state = app.collab.durable_state(document_id).await?;
    store_version(app, who, &visible.doc, &label, state, None).await
}

/// Stores `state` as the document's next version and tells subscribers. Plugins run
/// first: `before-save-version` (which may refuse, or change title, slug and body: the
/// changes go into the live document as normal edits) and `enrich` (whose fields are
/// stored with the version).
pub(crate) async fn store_version(
    app: &AppState,
    who: &Principal,
    doc: &Document,
    label: &str,
    state: Vec<u8>,
    restored_from: Option<i64>,
) -> Result<Version> {
    let mut doc = doc.clone();
    let mut state = state;
    let mut fields = "{}".to_string();
    let plugins = &app.plugins;
    let (save_hooks, enrich_hooks) = (
        plugins.wants(Hook::BeforeSaveVersion).await,
        plugins.wants(Hook::Enrich).await,
    );
    if save_hooks || enrich_hooks {
        let caller = services::caller(app, who);
        let body = decode_body(state.clone()).await?;
        let before = services::record(&doc, None, &body, "{}");
        let mut record = before.clone();
        if save_hooks
            && let Some(changed) = plugins
                .run_outcome(Hook::BeforeSaveVersion, &caller, before.clone(), None)
                .await?
        {
            let (d, s) = apply_plugin_changes(app, who, &doc, &before, &changed).await?;
            doc = d;
            if let Some(s) = s {
                state = s;
            }
            record = changed;
        }
        if enrich_hooks {
            let computed = plugins.run_enrich(&caller, &record).await;
            fields = serde_json::Value::Object(computed).to_string();
        }
    }
    let rendered = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || Body::from_state(&state).map(|b| (b.text(), b.html())))
            .await
            .map_err(anyhow::Error::from)??
    };
    let version = app
        .store
        .create_version(&NewVersion {
            document_id: doc.id,
            label,
            author_id: who.user().map(|u| u.id),
            title: &doc.title,
            state: &state,
            text: &rendered.0,
            html: &rendered.1,
            restored_from,
            fields: &fields,
        })
        .await?;
    app.collab.events().version_created(doc.id, version.id);
    app.search.touch();
    Ok(version)
}

/// Applies what a plugin chain changed: title and slug as a metadata write (validated
/// like any), the body as a CRDT change merged block by block with live edits. Returns
/// the document and, when the body changed, the new durable state.
pub(crate) async fn apply_plugin_changes(
    app: &AppState,
    who: &Principal,
    doc: &Document,
    before: &Record,
    after: &Record,
) -> Result<(Document, Option<Vec<u8>>)> {
    let mut doc = doc.clone();
    let title = (after.title != before.title)
        .then(|| documents::validate_title(&after.title))
        .transpose()?;
    let slug = (after.slug != before.slug).then_some(after.slug.as_str());
    if let Some(slug) = slug {
        documents::validate_slug(slug)?;
    }
    let status = (after.status != before.status)
        .then(|| DocStatus::try_from(after.status.clone()).map_err(|e| Error::validation("status", e)))
        .transpose()?;
    if title.is_some() || slug.is_some() || status.is_some() {
        doc = documents::write_metadata(
            app,
            &doc,
            MetadataChange {
                title: title.as_deref(),
                slug,
                status,
            },
        )
        .await?;
    }
    let input = if after.body_json != before.body_json {
        let json = serde_json::from_str(&after.body_json)
            .map_err(|e| Error::validation("body", format!("a plugin returned a body that is not JSON: {e}")))?;
        Some(content::BodyInput::Json(json))
    } else if after.body_html != before.body_html {
        Some(content::BodyInput::Html(after.body_html.clone()))
    } else {
        None
    };
    let Some(input) = input else { return Ok((doc, None)) };
    let target = tokio::task::spawn_blocking(move || content::parse_input(input))
        .await
        .map_err(anyhow::Error::from)??;
    let edited = app
        .collab
        .edit(doc.id, who.user().map(|u| u.id), move |txn| {
            content::merge_blocks(txn, None, &target)
        })
        .await
        .map_err(edit_error)?;
    Ok((doc, Some(edited.state)))
}

/// A page of versions, newest first. `after` is the cursor of the last version seen
/// (its number).
pub async fn list(
    app: &AppState,
    who: &Principal,
    document_id: Uuid,
    first: Option<i64>,
    after: Option<&str>,
) -> Result<(Vec<Version>, bool)> {
    documents::get(&app.store, who, document_id).await?;
    let limit = match first {
        None => DEFAULT_PAGE,
        Some(n) if (1..=i64::from(MAX_PAGE)).contains(&n) => n as u32,
        Some(_) => return Err(Error::validation("first", format!("must be between 1 and {MAX_PAGE}"))),
    };
    let before = after
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| Error::validation("after", "not a cursor from this list"))
        })
        .transpose()?;
    let mut versions = app.store.list_versions(document_id, before, limit + 1).await?;
    let more = versions.len() > limit as usize;
    versions.truncate(limit as usize);
    Ok((versions, more))
}

/// A version by id, if the caller may read its document.
pub async fn get(app: &AppState, who: &Principal, id: i64) -> Result<Version> {
    let version = app.store.version_by_id(id).await?.ok_or(Error::NotFound("version"))?;
    documents::get(&app.store, who, version.document_id)
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound("version"),
            e => e,
        })?;
    Ok(version)
}

/// A version by its number within a document (REST paths use numbers).
pub async fn get_by_number(app: &AppState, who: &Principal, document_id: Uuid, number: i64) -> Result<Version> {
    documents::get(&app.store, who, document_id).await?;
    app.store
        .version_by_number(document_id, number)
        .await?
        .ok_or(Error::NotFound("version"))
}

/// The body a version holds.
pub async fn body(app: &AppState, version_id: i64) -> Result<Body> {
    let state = app
        .store
        .version_state(version_id)
        .await?
        .ok_or(Error::NotFound("version"))?;
    decode_body(state).await
}

/// The body an encoded state holds, decoded off the executor.
pub(crate) async fn decode_body(state: Vec<u8>) -> Result<Body> {
    Ok(tokio::task::spawn_blocking(move || Body::from_state(&state))
        .await
        .map_err(anyhow::Error::from)??)
}

/// Line and word diffs of the plain text from one version to another, or to the live
/// document when `to` is `None`.
pub async fn diff(
    app: &AppState,
    who: &Principal,
    from: i64,
    to: Option<i64>,
) -> Result<(Vec<diff::DiffPart>, Vec<diff::DiffPart>)> {
    let old = get(app, who, from).await?;
    let new_text = match to {
        Some(to) => {
            let new = get(app, who, to).await?;
            if new.document_id != old.document_id {
                return Err(Error::validation("to", "both versions must belong to one document"));
            }
            new.text
        }
        None => crate::publishing::live_body(app, old.document_id).await?.text(),
    };
    let old_text = old.text;
    Ok(
        tokio::task::spawn_blocking(move || (diff::lines(&old_text, &new_text), diff::words(&old_text, &new_text)))
            .await
            .map_err(anyhow::Error::from)?,
    )
}

/// Makes the live document's body equal to a version's, as one CRDT change, and
/// records the result as a new version labelled as a restore.
pub async fn restore(app: &AppState, who: &Principal, version_id: i64) -> Result<Version> {
    let old = get(app, who, version_id).await?;
    let visible = documents::get(&app.store, who, old.document_id).await?;
    policy::require(who, visible.access, Access::Write)?;
    let target = body(app, version_id).await?.into_json();
    let author = who.user().map(|u| u.id);
    let edited = app
        .collab
        .edit(old.document_id, author, move |txn| {
            content::replace_blocks(txn, &target)
        })
        .await
        .map_err(edit_error)?;
    let label = format!("Restored v{}: {}", old.number, old.label);
    let label: String = label.chars().take(MAX_LABEL).collect();
    store_version(app, who, &visible.doc, &label, edited.state, Some(old.number)).await
}

pub(crate) fn edit_error(e: EditError) -> Error {
    match e {
        EditError::TooLarge(max) => Error::LimitExceeded(format!("the document would exceed {max} bytes")),
        EditError::Failed(why) => Error::Internal(anyhow::anyhow!("server-side edit failed: {why}")),
        EditError::Retry(why) => Error::Unavailable(why),
    }
}
