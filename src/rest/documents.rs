//! `/api/documents*`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Caller, JsonBody};
use crate::auth::Grant;
use crate::documents::{self, DocStatus, Document, DocumentPatch, ListArgs, NewDocument};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::OrderField;

use super::parse_document_id as parse_id;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    title: String,
    slug: Option<String>,
}

pub async fn create(
    State(app): State<AppState>,
    Caller(who): Caller,
    JsonBody(b): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<Document>)> {
    let doc = documents::create(
        &app,
        &who,
        NewDocument {
            title: b.title,
            slug: b.slug,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(doc)))
}

pub async fn get(State(app): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> Result<Json<Document>> {
    Ok(Json(documents::get(&app.store, &who, parse_id(&id)?).await?.doc))
}

pub async fn get_by_slug(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(slug): Path<String>,
) -> Result<Json<Document>> {
    Ok(Json(documents::get_by_slug(&app.store, &who, &slug).await?.doc))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListParams {
    status: Option<DocStatus>,
    owner: Option<Uuid>,
    order_by: Option<ListOrder>,
    direction: Option<Direction>,
    first: Option<i64>,
    after: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
enum ListOrder {
    CreatedAt,
    UpdatedAt,
    Title,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Direction {
    Asc,
    Desc,
}

pub async fn list(
    State(app): State<AppState>,
    Caller(who): Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(p) = params.map_err(|e| Error::validation("query", e.body_text()))?;
    let order = match p.order_by.unwrap_or(ListOrder::UpdatedAt) {
        ListOrder::CreatedAt => OrderField::CreatedAt,
        ListOrder::UpdatedAt => OrderField::UpdatedAt,
        ListOrder::Title => OrderField::Title,
    };
    let args = ListArgs {
        status: p.status,
        owner: p.owner,
        order,
        descending: p.direction.unwrap_or(Direction::Desc) == Direction::Desc,
        first: p.first,
        after: p.after,
    };
    let page = documents::list(&app.store, &who, args).await?;
    let end_cursor = page.documents.last().map(|d| documents::encode_cursor(order, d));
    Ok(Json(json!({
        "items": page.documents,
        "pageInfo": { "hasNextPage": page.has_next_page, "endCursor": end_cursor },
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBody {
    lock_version: i64,
    title: Option<String>,
    slug: Option<String>,
    status: Option<DocStatus>,
}

pub async fn update(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UpdateBody>,
) -> Result<Json<Document>> {
    let id = parse_id(&id)?;
    who.require_writer()?;
    let patch = DocumentPatch {
        title: b.title,
        slug: b.slug,
        status: b.status,
    };
    Ok(Json(documents::update(&app, &who, id, b.lock_version, patch).await?))
}

pub async fn delete(State(app): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> Result<StatusCode> {
    let id = parse_id(&id)?;
    who.require_writer()?;
    documents::delete(&app.store, &app.collab.events(), &who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareBody {
    user_email: String,
    /// `editor`, `viewer`, or null to remove the grant.
    role: Option<Grant>,
}

pub async fn share(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ShareBody>,
) -> Result<StatusCode> {
    let id = parse_id(&id)?;
    documents::share(&app.store, &who, id, &b.user_email, b.role).await?;
    Ok(StatusCode::NO_CONTENT)
}
