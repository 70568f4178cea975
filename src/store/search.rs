//! What the search indexer reads: versions by id (the outbox it follows), documents'
//! metadata by change time, how far each document's content has come, and who may
//! read which documents.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Pool, Store, on_db};

/// A version as the index holds it: [`super::Version`] without its HTML and fields,
/// which a rebuild would read for 100,000 versions only to drop.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionText {
    pub id: i64,
    pub document_id: Uuid,
    pub number: i64,
    pub label: String,
    pub author_id: Option<Uuid>,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub text: String,
}

/// A document's metadata as search filters need it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DocumentMeta {
    pub id: Uuid,
    pub title: String,
    pub status: String,
    pub owner_id: Uuid,
    pub published_version_id: Option<i64>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The id of its newest version, if it has one.
    pub latest_version_id: Option<i64>,
}

const VERSION_TEXT: &str = "id, document_id, number, label, author_id, title, created_at, text";
const META: &str = "d.id, d.title, d.status, d.owner_id, d.published_version_id, d.updated_at, d.deleted_at,
     (select v.id from document_versions v where v.document_id = d.id order by v.number desc limit 1)
         as latest_version_id";
// (The newest by number, through the (document_id, number) index: `max(v.id)` made
// PostgreSQL walk the primary key backwards from the newest version of all, seconds at
// 100,000 versions.)

impl Store {
    /// Versions with an id above `after`, in id order, at most `limit`.
    pub async fn versions_after(&self, after: i64, limit: u32) -> anyhow::Result<Vec<VersionText>> {
        let sql = format!("select {VERSION_TEXT} from document_versions where id > $1 order by id limit $2");
        Ok(on_db!(self, p => sqlx::query_as::<_, VersionText>(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await)?)
    }

    /// The versions among `ids` that exist.
    pub async fn versions_by_ids(&self, ids: &[i64]) -> anyhow::Result<Vec<VersionText>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sql = format!("select {VERSION_TEXT} from document_versions where id in ({list}) order by id");
        Ok(on_db!(self, p => sqlx::query_as::<_, VersionText>(&sql).fetch_all(p).await)?)
    }

    /// The number of versions with an id above `after`, and the highest id there is.
    pub async fn version_counts(&self, after: i64) -> anyhow::Result<(i64, i64)> {
        let sql = "select count(*), coalesce(max(id), 0) from document_versions where id > $1";
        Ok(on_db!(self, p => sqlx::query_as::<_, (i64, i64)>(sql).bind(after).fetch_one(p).await)?)
    }

    /// Every document's metadata, deleted ones included (`since`: only those changed at
    /// or after it).
    pub async fn documents_meta(&self, since: Option<DateTime<Utc>>) -> anyhow::Result<Vec<DocumentMeta>> {
        let sql =
            format!("select {META} from documents d where $1 is null or d.updated_at >= $1 order by d.updated_at");
        Ok(on_db!(self, p => sqlx::query_as::<_, DocumentMeta>(&sql).bind(since).fetch_all(p).await)?)
    }

    /// How far each live document's content has come: the highest update sequence number
    /// stored for it (in its snapshot or its update log).
    pub async fn content_seqs(&self) -> anyhow::Result<Vec<(Uuid, i64)>> {
        const LOGGED: &str = "left join document_snapshots s on s.document_id = d.id
             left join (select document_id, max(seq) as m from document_updates group by document_id) u
                 on u.document_id = d.id";
        let sql = match &self.pool {
            Pool::Sqlite(_) => format!(
                "select d.id, max(coalesce(s.seq, 0), coalesce(u.m, 0), coalesce(r.m, 0)) from documents d {LOGGED}
                 left join (select document_id, max(seq) as m from document_updates_recent group by document_id) r
                     on r.document_id = d.id
                 where d.deleted_at is null"
            ),
            Pool::Postgres(_) => format!(
                "select d.id, greatest(coalesce(s.seq, 0), coalesce(u.m, 0)) from documents d {LOGGED}
                 where d.deleted_at is null"
            ),
        };
        Ok(on_db!(self, p => sqlx::query_as::<_, (Uuid, i64)>(&sql).fetch_all(p).await)?)
    }

    /// One document's content sequence number ([`Store::content_seqs`]).
    pub async fn content_seq(&self, document: Uuid) -> anyhow::Result<i64> {
        let recent = match &self.pool {
            Pool::Sqlite(_) => ", (select coalesce(max(seq), 0) from document_updates_recent where document_id = $1)",
            Pool::Postgres(_) => "",
        };
        let sql = format!(
            "select (select coalesce(max(seq), 0) from document_snapshots where document_id = $1),
                    (select coalesce(max(seq), 0) from document_updates where document_id = $1){recent}"
        );
        let seqs: Vec<i64> = match &self.pool {
            Pool::Sqlite(p) => {
                let (a, b, c) = sqlx::query_as::<_, (i64, i64, i64)>(&sql)
                    .bind(document)
                    .fetch_one(p)
                    .await?;
                vec![a, b, c]
            }
            Pool::Postgres(p) => {
                let (a, b) = sqlx::query_as::<_, (i64, i64)>(&sql)
                    .bind(document)
                    .fetch_one(p)
                    .await?;
                vec![a, b]
            }
        };
        Ok(seqs.into_iter().max().unwrap_or(0))
    }

    /// The live documents `user` may read: its own and those shared with it.
    pub async fn readable_documents(&self, user: Uuid) -> anyhow::Result<Vec<Uuid>> {
        let sql = "select id from documents where deleted_at is null and owner_id = $1
                   union select a.document_id from document_access a join documents d on d.id = a.document_id
                   where a.user_id = $1 and d.deleted_at is null";
        Ok(on_db!(self, p => sqlx::query_scalar::<_, Uuid>(sql).bind(user).fetch_all(p).await)?)
    }
}

impl Store {
    /// The live documents among `ids`, each with the grant `user` holds on it.
    pub async fn documents_with_grants(
        &self,
        ids: &[Uuid],
        user: Option<Uuid>,
    ) -> anyhow::Result<Vec<(crate::documents::Document, Option<crate::auth::Grant>)>> {
        let Some((first, rest)) = ids.split_first() else {
            return Ok(Vec::new());
        };
        // $1 the first id, $2 the user, then the others.
        let list = std::iter::once("$1".to_string())
            .chain((0..rest.len()).map(|i| format!("${}", i + 3)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = super::documents::document_where_sql(&format!("d.id in ({list})"));
        let rows = on_db!(self, p => {
            let mut q = sqlx::query_as::<_, super::documents::DocWithGrant>(&sql).bind(*first).bind(user);
            for id in rest {
                q = q.bind(*id);
            }
            q.fetch_all(p).await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| (r.doc, r.grant_role.and_then(|g| crate::auth::Grant::try_from(g).ok())))
            .collect())
    }
}
