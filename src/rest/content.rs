//! `/api/content/*`: documents for frontends. The published version by default,
//! readable without access to the document (and anonymously when
//! `content.anonymous_read` is on); `?draft=true` gives the live document to callers
//! who may read it.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use super::versions::body_json;
use crate::error::{Error, Result};
use crate::publishing::{self, Key, View};
use crate::state::AppState;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default)]
    draft: bool,
}

pub async fn by_id(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(p) = params.map_err(|e| Error::validation("query", e.body_text()))?;
    read(&app, &who, Key::Id(super::parse_document_id(&id)?), p.draft).await
}

pub async fn by_slug(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(slug): Path<String>,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(p) = params.map_err(|e| Error::validation("query", e.body_text()))?;
    read(&app, &who, Key::Slug(&slug), p.draft).await
}

async fn read(app: &AppState, who: &crate::auth::Principal, key: Key<'_>, draft: bool) -> Result<Json<Value>> {
    let r = publishing::read(app, who, key, draft).await?;
    let d = &r.doc;
    let (title, version) = match r.view {
        View::Live => (d.title.clone(), Value::Null),
        View::Published => {
            let v = publishing::published_version(app, d)
                .await?
                .ok_or(Error::NotFound("published content"))?;
            let version = json!({ "id": v.id, "number": v.number, "label": v.label, "createdAt": v.created_at });
            (v.title, version)
        }
    };
    let body = publishing::delivered_body(app, who, &r)
        .await?
        .ok_or(Error::NotFound("published content"))?;
    Ok(Json(json!({
        "id": d.id,
        "slug": d.slug,
        "title": title,
        "status": d.status,
        "draft": r.view == View::Live,
        "version": version,
        "updatedAt": d.updated_at,
        "body": body_json(&body),
    })))
}
