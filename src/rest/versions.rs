//! `/api/documents/{id}/versions*`, restore, body, publish: versions and publishing
//! for simple clients. Versions are addressed by their number within the document.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, JsonBody};
use crate::content::{self, Body};
use crate::documents::Document;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::Version;
use crate::{publishing, versions};

use super::parse_document_id as parse_id;

fn parse_number(n: &str) -> Result<i64> {
    n.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::validation("version", "not a version number"))
}

pub fn body_json(body: &Body) -> Value {
    json!({ "html": body.html(), "markdown": body.markdown(), "json": body.json(), "text": body.text() })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    first: Option<i64>,
    after: Option<String>,
}

pub async fn list(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(p) = params.map_err(|e| Error::validation("query", e.body_text()))?;
    let (items, more) = versions::list(&app, &who, parse_id(&id)?, p.first, p.after.as_deref()).await?;
    let end_cursor = items.last().map(|v| v.number.to_string());
    Ok(Json(json!({
        "items": items,
        "pageInfo": { "hasNextPage": more, "endCursor": end_cursor },
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveBody {
    label: String,
}

pub async fn save(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SaveBody>,
) -> Result<(StatusCode, Json<Version>)> {
    let id = parse_id(&id)?;
    who.require_writer()?;
    Ok((
        StatusCode::CREATED,
        Json(versions::save(&app, &who, id, &b.label).await?),
    ))
}

/// One version with its body in every format.
pub async fn get(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path((id, number)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let v = versions::get_by_number(&app, &who, parse_id(&id)?, parse_number(&number)?).await?;
    let body = versions::body(&app, v.id).await?;
    let mut out = serde_json::to_value(&v).map_err(anyhow::Error::from)?;
    out["body"] = body_json(&body);
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffParams {
    /// Another version number; omitted: the live document.
    to: Option<String>,
}

pub async fn diff(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path((id, number)): Path<(String, String)>,
    params: Result<Query<DiffParams>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(p) = params.map_err(|e| Error::validation("query", e.body_text()))?;
    let id = parse_id(&id)?;
    let from = versions::get_by_number(&app, &who, id, parse_number(&number)?).await?;
    let to = match p.to.as_deref() {
        Some(n) => Some(versions::get_by_number(&app, &who, id, parse_number(n)?).await?.id),
        None => None,
    };
    let (lines, words) = versions::diff(&app, &who, from.id, to).await?;
    Ok(Json(json!({ "lines": lines, "words": words })))
}

pub async fn restore(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path((id, number)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Version>)> {
    who.require_writer()?;
    let v = versions::get_by_number(&app, &who, parse_id(&id)?, parse_number(&number)?).await?;
    Ok((StatusCode::CREATED, Json(versions::restore(&app, &who, v.id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyPayload {
    html: Option<String>,
    markdown: Option<String>,
    json: Option<Value>,
    /// The body the caller read and edited: only its changes from it are applied.
    base: Option<BaseBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseBody {
    html: Option<String>,
    markdown: Option<String>,
    json: Option<Value>,
}

/// Writes the live body (exactly one of html, markdown, json).
pub async fn set_body(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<BodyPayload>,
) -> Result<Json<Value>> {
    let id = parse_id(&id)?;
    who.require_writer()?;
    let input = content::BodyInput::one_of("body", b.html, b.markdown, b.json)?;
    let base = b
        .base
        .map(|x| content::BodyInput::one_of("base", x.html, x.markdown, x.json))
        .transpose()?;
    let body = publishing::set_body(&app, &who, id, input, base).await?;
    Ok(Json(json!({ "body": body_json(&body) })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    label: Option<String>,
}

pub async fn publish(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Document>> {
    let id = parse_id(&id)?;
    who.require_writer()?;
    // The body is optional: `{"label": "…"}` names the version publishing saves.
    let label = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        super::parse_json::<PublishBody>(&body)?.label
    };
    Ok(Json(publishing::publish(&app, &who, id, label.as_deref()).await?))
}

pub async fn unpublish(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Document>> {
    let id = parse_id(&id)?;
    who.require_writer()?;
    Ok(Json(publishing::unpublish(&app, &who, id).await?))
}
