//! `GET /api/search`: the GraphQL `search` for simple clients.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Caller;
use crate::documents::DocStatus;
use crate::error::{Error, Result};
use crate::search::{self, Filter};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Params {
    q: String,
    document_id: Option<Uuid>,
    author: Option<Uuid>,
    status: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    #[serde(default)]
    latest_only: bool,
    #[serde(default)]
    published_only: bool,
    live: Option<bool>,
    first: Option<i64>,
    after: Option<String>,
}

pub async fn search(
    State(app): State<AppState>,
    Caller(who): Caller,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(p) = params.map_err(|e| Error::validation("query", e.body_text()))?;
    let status = p
        .status
        .map(|s| DocStatus::try_from(s).map_err(|e| Error::validation("status", e)))
        .transpose()?;
    let filter = Filter {
        document_id: p.document_id,
        author: p.author,
        status,
        from: p.from,
        to: p.to,
        latest_only: p.latest_only,
        published_only: p.published_only,
        live: p.live,
    };
    let page = search::search(&app, &who, &p.q, filter, p.first, p.after.as_deref()).await?;
    let items: Vec<Value> = page
        .hits
        .iter()
        .map(|h| {
            json!({
                "documentId": h.document.id,
                "slug": h.document.slug,
                "kind": if h.version_id.is_some() { "version" } else { "live" },
                "versionId": h.version_id,
                "versionNumber": h.version_number,
                "title": h.title,
                "titleHtml": h.title_html,
                "label": h.label,
                "authorId": h.author_id,
                "createdAt": h.created_at,
                "score": h.score,
                "snippets": h.snippets,
                "published": h.published,
                "cursor": h.cursor,
            })
        })
        .collect();
    Ok(Json(json!({
        "totalCount": page.total,
        "items": items,
        "pageInfo": { "hasNextPage": page.has_next_page, "endCursor": page.end_cursor },
    })))
}
