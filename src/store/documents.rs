//! Document metadata, grants, and keyset-paginated listing.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, is_unique_violation, now, on_db};
use crate::auth::Grant;
use crate::documents::{DocStatus, Document};

const DOC_COLUMNS: &str = "d.id, d.title, d.slug, d.status, d.owner_id, d.lock_version, \
                           d.published_version_id, d.created_at, d.updated_at";
/// The same columns unqualified, for `returning` (SQLite allows no alias there).
const RETURNING: &str = "id, title, slug, status, owner_id, lock_version, \
                         published_version_id, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(super) struct DocWithGrant {
    #[sqlx(flatten)]
    pub(super) doc: Document,
    pub(super) grant_role: Option<String>,
}

/// The column a listing is ordered by. Every order ends with `id` as a tie-breaker,
/// so a keyset cursor names exactly one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderField {
    CreatedAt,
    UpdatedAt,
    Title,
}

impl OrderField {
    fn column(self) -> &'static str {
        match self {
            OrderField::CreatedAt => "d.created_at",
            OrderField::UpdatedAt => "d.updated_at",
            OrderField::Title => "d.title",
        }
    }

    pub fn key_of(self, doc: &Document) -> CursorKey {
        match self {
            OrderField::CreatedAt => CursorKey::Time(doc.created_at),
            OrderField::UpdatedAt => CursorKey::Time(doc.updated_at),
            OrderField::Title => CursorKey::Text(doc.title.clone()),
        }
    }
}

/// The sort-key value of the last row a page ended on.
#[derive(Debug, Clone, PartialEq)]
pub enum CursorKey {
    Time(DateTime<Utc>),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub status: Option<DocStatus>,
    pub owner: Option<Uuid>,
    /// `Some(user)`: only documents this user owns or was granted. `None`: all.
    pub visible_to: Option<Uuid>,
    pub order: OrderField,
    pub descending: bool,
    /// Resume after this (key, id).
    pub after: Option<(CursorKey, Uuid)>,
    pub limit: u32,
}

#[derive(Debug)]
pub struct DocumentPage {
    pub documents: Vec<Document>,
    pub has_next_page: bool,
}

/// What an optimistic-locked update found.
#[derive(Debug)]
pub enum UpdateOutcome {
    Updated(Document),
    /// The row's `lock_version` differs from the one the writer read: here it is now.
    Stale(Document),
    Missing,
    SlugTaken,
}

#[derive(Debug, Default)]
pub struct MetadataChange<'a> {
    pub title: Option<&'a str>,
    pub slug: Option<&'a str>,
    pub status: Option<DocStatus>,
}

/// A live document matching `condition` (on `$1`), with the grant user `$2` holds on it.
/// Every connect to a document reads it with `d.id = $1` (warmed on new PostgreSQL
/// connections: `super::warm_up`).
pub(super) fn document_where_sql(condition: &str) -> String {
    format!(
        "select {DOC_COLUMNS}, a.role as grant_role
             from documents d
             left join document_access a on a.document_id = d.id and a.user_id = $2
             where {condition} and d.deleted_at is null"
    )
}

impl Store {
    /// Inserts a document; `Ok(None)` when the slug is taken by a live document.
    pub async fn create_document(&self, owner: Uuid, title: &str, slug: &str) -> anyhow::Result<Option<Document>> {
        let sql = format!(
            "insert into documents (id, title, slug, status, owner_id, lock_version, created_at, updated_at)
             values ($1, $2, $3, 'draft', $4, 1, $5, $5) returning {RETURNING}"
        );
        let result = on_db!(self, p => sqlx::query_as::<_, Document>(&sql)
            .bind(Uuid::now_v7())
            .bind(title)
            .bind(slug)
            .bind(owner)
            .bind(now())
            .fetch_one(p)
            .await);
        match result {
            Ok(doc) => Ok(Some(doc)),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A live document by id, with the grant `user` holds on it.
    pub async fn document_by_id(
        &self,
        id: Uuid,
        user: Option<Uuid>,
    ) -> anyhow::Result<Option<(Document, Option<Grant>)>> {
        self.document_where("d.id = $1", DocKey::Id(id), user).await
    }

    /// A live document by slug, with the grant `user` holds on it.
    pub async fn document_by_slug(
        &self,
        slug: &str,
        user: Option<Uuid>,
    ) -> anyhow::Result<Option<(Document, Option<Grant>)>> {
        self.document_where("d.slug = $1", DocKey::Slug(slug), user).await
    }

    async fn document_where(
        &self,
        condition: &str,
        key: DocKey<'_>,
        user: Option<Uuid>,
    ) -> anyhow::Result<Option<(Document, Option<Grant>)>> {
        let sql = document_where_sql(condition);
        let row = on_db!(self, p => {
            let q = sqlx::query_as::<_, DocWithGrant>(&sql);
            let q = match key {
                DocKey::Id(id) => q.bind(id),
                DocKey::Slug(slug) => q.bind(slug),
            };
            q.bind(user).fetch_optional(p).await
        })?;
        Ok(row.map(|r| (r.doc, r.grant_role.and_then(|g| Grant::try_from(g).ok()))))
    }

    pub async fn list_documents(&self, q: &ListQuery) -> anyhow::Result<DocumentPage> {
        let col = q.order.column();
        let (dir, cmp) = if q.descending { ("desc", "<") } else { ("asc", ">") };
        let keyset = if q.after.is_some() {
            format!("and ({col}, d.id) {cmp} ($4, $5)")
        } else {
            // Keep the placeholders numbered the same way; these are never true-filtering.
            "and ($4 is null or $5 is null or true)".to_string()
        };
        let sql = format!(
            "select {DOC_COLUMNS} from documents d
             where d.deleted_at is null
               and ($1 is null or d.status = $1)
               and ($2 is null or d.owner_id = $2)
               and ($3 is null or d.owner_id = $3 or exists (
                     select 1 from document_access a where a.document_id = d.id and a.user_id = $3))
               {keyset}
             order by {col} {dir}, d.id {dir}
             limit $6"
        );
        let (key_time, key_text, after_id) = match &q.after {
            Some((CursorKey::Time(t), id)) => (Some(*t), None, Some(*id)),
            Some((CursorKey::Text(s), id)) => (None, Some(s.clone()), Some(*id)),
            None => (None, None, None),
        };
        let limit = i64::from(q.limit) + 1;
        let mut documents = on_db!(self, p => {
            let query = sqlx::query_as::<_, Document>(&sql)
                .bind(q.status.map(DocStatus::as_str))
                .bind(q.owner)
                .bind(q.visible_to);
            let query = if q.order == OrderField::Title {
                query.bind(key_text)
            } else {
                query.bind(key_time)
            };
            query.bind(after_id).bind(limit).fetch_all(p).await
        })?;
        let has_next_page = documents.len() > q.limit as usize;
        documents.truncate(q.limit as usize);
        Ok(DocumentPage {
            documents,
            has_next_page,
        })
    }

    /// Applies `change` if the row still has `lock_version`, bumping it; one statement,
    /// so two writers with the same `lock_version` cannot both succeed.
    pub async fn update_document(
        &self,
        id: Uuid,
        lock_version: i64,
        change: &MetadataChange<'_>,
    ) -> anyhow::Result<UpdateOutcome> {
        let sql = format!(
            "update documents
             set title = coalesce($1, title), slug = coalesce($2, slug),
                 status = coalesce($3, status),
                 lock_version = lock_version + 1, updated_at = $4
             where id = $5 and lock_version = $6 and deleted_at is null
             returning {RETURNING}"
        );
        let result = on_db!(self, p => sqlx::query_as::<_, Document>(&sql)
            .bind(change.title)
            .bind(change.slug)
            .bind(change.status.map(DocStatus::as_str))
            .bind(now())
            .bind(id)
            .bind(lock_version)
            .fetch_optional(p)
            .await);
        match result {
            Ok(Some(doc)) => Ok(UpdateOutcome::Updated(doc)),
            Ok(None) => Ok(match self.document_by_id(id, None).await? {
                Some((doc, _)) => UpdateOutcome::Stale(doc),
                None => UpdateOutcome::Missing,
            }),
            Err(e) if is_unique_violation(&e) => Ok(UpdateOutcome::SlugTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// A document whether or not it was deleted (for telling subscribers it is gone).
    pub async fn deleted_document(&self, id: Uuid) -> anyhow::Result<Option<Document>> {
        let sql = format!("select {DOC_COLUMNS} from documents d where d.id = $1");
        Ok(on_db!(self, p => sqlx::query_as::<_, Document>(&sql).bind(id).fetch_optional(p).await)?)
    }

    /// Soft-deletes a live document; false when there was none.
    pub async fn delete_document(&self, id: Uuid) -> anyhow::Result<bool> {
        let sql = "update documents
                   set deleted_at = $1, updated_at = $1, lock_version = lock_version + 1
                   where id = $2 and deleted_at is null";
        let n = on_db!(self, p => sqlx::query(sql)
            .bind(now())
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// The access epoch (migration 0008): moves whenever a change may have taken
    /// someone's access away (a share changed or removed, a document deleted, an API
    /// token revoked), on any node.
    pub async fn access_epoch(&self) -> anyhow::Result<i64> {
        let sql = "select epoch from access_epoch where id = 1";
        Ok(on_db!(self, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await)?)
    }

    /// Sets (or with `None` removes) `user`'s grant on a document.
    pub async fn set_grant(
        &self,
        document: Uuid,
        user: Uuid,
        grant: Option<Grant>,
        granted_by: Uuid,
    ) -> anyhow::Result<()> {
        match grant {
            Some(g) => {
                let sql = "insert into document_access (document_id, user_id, role, granted_by, created_at)
                           values ($1, $2, $3, $4, $5)
                           on conflict (document_id, user_id)
                           do update set role = excluded.role, granted_by = excluded.granted_by";
                on_db!(self, p => sqlx::query(sql)
                    .bind(document)
                    .bind(user)
                    .bind(g.as_str())
                    .bind(granted_by)
                    .bind(now())
                    .execute(p)
                    .await
                    .map(drop))?;
            }
            None => {
                let sql = "delete from document_access where document_id = $1 and user_id = $2";
                on_db!(self, p => sqlx::query(sql).bind(document).bind(user).execute(p).await.map(drop))?;
            }
        }
        Ok(())
    }
}

enum DocKey<'a> {
    Id(Uuid),
    Slug(&'a str),
}
