//! Named versions and the published pointer.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Store, is_unique_violation, now, on_db};
use crate::documents::{DocStatus, Document};

/// A named version without its (large) Yjs state.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub id: i64,
    pub document_id: Uuid,
    /// 1, 2, 3… per document.
    pub number: i64,
    pub label: String,
    pub author_id: Option<Uuid>,
    pub title: String,
    /// The number of the version this one restored, if it records a restore.
    pub restored_from: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// Fields computed by plugins (`enrich`), a JSON object keyed by plugin name.
    #[serde(skip)]
    pub fields: String,
    #[serde(skip)]
    pub text: String,
    #[serde(skip)]
    pub html: String,
}

pub struct NewVersion<'a> {
    pub document_id: Uuid,
    pub label: &'a str,
    pub author_id: Option<Uuid>,
    pub title: &'a str,
    pub state: &'a [u8],
    pub text: &'a str,
    pub html: &'a str,
    pub restored_from: Option<i64>,
    pub fields: &'a str,
}

const COLUMNS: &str = "id, document_id, number, label, author_id, title, restored_from, created_at, text, html, fields";

impl Store {
    /// Stores a version with the document's next number. Two concurrent saves cannot
    /// take the same number (unique constraint); the loser retries with the next one.
    pub async fn create_version(&self, v: &NewVersion<'_>) -> anyhow::Result<Version> {
        let sql = format!(
            "insert into document_versions
                 (document_id, number, label, author_id, state, text, html, title, created_at, restored_from, fields)
             select $1, coalesce(max(number), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10
             from document_versions where document_id = $1
             returning {COLUMNS}"
        );
        let mut attempt = 0;
        loop {
            let result = on_db!(self, p => sqlx::query_as::<_, Version>(&sql)
                .bind(v.document_id)
                .bind(v.label)
                .bind(v.author_id)
                .bind(v.state)
                .bind(v.text)
                .bind(v.html)
                .bind(v.title)
                .bind(now())
                .bind(v.restored_from)
                .bind(v.fields)
                .fetch_one(p)
                .await);
            match result {
                Err(e) if is_unique_violation(&e) && attempt < 10 => attempt += 1,
                r => return Ok(r?),
            }
        }
    }

    /// A document's versions, newest first, starting below `before` (a version number).
    pub async fn list_versions(&self, document: Uuid, before: Option<i64>, limit: u32) -> anyhow::Result<Vec<Version>> {
        let sql = format!(
            "select {COLUMNS} from document_versions
             where document_id = $1 and ($2 is null or number < $2)
             order by number desc limit $3"
        );
        Ok(on_db!(self, p => sqlx::query_as::<_, Version>(&sql)
            .bind(document)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await)?)
    }

    pub async fn version_by_id(&self, id: i64) -> anyhow::Result<Option<Version>> {
        let sql = format!("select {COLUMNS} from document_versions where id = $1");
        Ok(on_db!(self, p => sqlx::query_as::<_, Version>(&sql).bind(id).fetch_optional(p).await)?)
    }

    pub async fn version_by_number(&self, document: Uuid, number: i64) -> anyhow::Result<Option<Version>> {
        let sql = format!("select {COLUMNS} from document_versions where document_id = $1 and number = $2");
        Ok(on_db!(self, p => sqlx::query_as::<_, Version>(&sql)
            .bind(document)
            .bind(number)
            .fetch_optional(p)
            .await)?)
    }

    /// The Yjs state a version holds.
    pub async fn version_state(&self, id: i64) -> anyhow::Result<Option<Vec<u8>>> {
        let sql = "select state from document_versions where id = $1";
        Ok(on_db!(self, p => sqlx::query_scalar::<_, Vec<u8>>(sql).bind(id).fetch_optional(p).await)?)
    }

    /// Points the document's published content at `version` (or at nothing) and sets
    /// its status, bumping `lock_version` like any metadata write.
    pub async fn set_published(
        &self,
        document: Uuid,
        version: Option<i64>,
        status: DocStatus,
    ) -> anyhow::Result<Option<Document>> {
        let sql = "update documents
                   set published_version_id = $1, status = $2, lock_version = lock_version + 1, updated_at = $3
                   where id = $4 and deleted_at is null
                   returning id, title, slug, status, owner_id, lock_version, published_version_id, created_at, updated_at";
        Ok(on_db!(self, p => sqlx::query_as::<_, Document>(sql)
            .bind(version)
            .bind(status.as_str())
            .bind(now())
            .bind(document)
            .fetch_optional(p)
            .await)?)
    }
}
