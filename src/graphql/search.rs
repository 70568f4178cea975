//! GraphQL views of search: hits, their connection, the filter input, the index status.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::types::{Document, DocumentAccess, PageInfo, User, Version};
use super::{gql, state};
use crate::documents::DocStatus;
use crate::search;

/// What a search may be narrowed to. Without a filter, a search covers every version and
/// every live draft the caller may read.
#[derive(InputObject, Default)]
pub struct SearchFilter {
    /// Only this document's versions and draft.
    pub document_id: Option<ID>,
    /// Only versions saved by this user.
    pub author: Option<ID>,
    /// Only documents whose status is this now.
    pub status: Option<DocStatus>,
    /// Saved at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Saved at or before this time.
    pub to: Option<DateTime<Utc>>,
    /// Only each document's newest version (one hit per document at most).
    #[graphql(default)]
    pub latest_only: bool,
    /// Only the version readers get now (published documents).
    #[graphql(default)]
    pub published_only: bool,
    /// true: only live drafts (what editors see now); false: only saved versions.
    pub live: Option<bool>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum SearchHitKind {
    /// A saved version.
    Version,
    /// A document's live draft, as of a few seconds after its last edit.
    Live,
}

pub struct SearchHit(pub search::Hit);

#[Object]
impl SearchHit {
    async fn kind(&self) -> SearchHitKind {
        if self.0.version_id.is_some() {
            SearchHitKind::Version
        } else {
            SearchHitKind::Live
        }
    }
    async fn document(&self) -> Document {
        Document {
            doc: self.0.document.clone(),
            view: self.0.view(),
            access: Some(self.0.access),
        }
    }
    /// The version matched (`null` for a live draft).
    async fn version(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Version>> {
        let Some(id) = self.0.version_id else { return Ok(None) };
        Ok(state(ctx).store.version_by_id(id).await.map_err(gql)?.map(Version))
    }
    async fn version_id(&self) -> Option<ID> {
        self.0.version_id.map(|v| ID(v.to_string()))
    }
    async fn version_number(&self) -> Option<i64> {
        self.0.version_number
    }
    /// The title the version had (a live draft: the title now).
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// The title, HTML-escaped, with `<mark>` around the matched words.
    async fn title_html(&self) -> &str {
        &self.0.title_html
    }
    /// The version's label ("" for a live draft).
    async fn label(&self) -> &str {
        &self.0.label
    }
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        super::types::user(ctx, self.0.author_id).await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Relevance (BM25): higher is better; comparable within one search only.
    async fn score(&self) -> f64 {
        f64::from(self.0.score)
    }
    /// Up to two fragments of the text around the matches, HTML-escaped, with `<mark>`
    /// around the matched words (the text's beginning when only the title matched).
    async fn snippets(&self) -> &[String] {
        &self.0.snippets
    }
    /// Whether this is the version readers get now.
    async fn published(&self) -> bool {
        self.0.published
    }
    /// What the caller may do with the document (NONE: it sees only published content).
    async fn my_access(&self) -> DocumentAccess {
        self.0.access.into()
    }
}

#[derive(SimpleObject)]
pub struct SearchEdge {
    pub cursor: String,
    pub node: SearchHit,
}

#[derive(SimpleObject)]
pub struct SearchConnection {
    /// Every hit the caller may see, not only this page's.
    pub total_count: i64,
    pub edges: Vec<SearchEdge>,
    pub page_info: PageInfo,
}

impl From<search::Page> for SearchConnection {
    fn from(p: search::Page) -> Self {
        Self {
            total_count: p.total as i64,
            page_info: PageInfo {
                has_next_page: p.has_next_page,
                end_cursor: p.end_cursor,
            },
            edges: p
                .hits
                .into_iter()
                .map(|h| SearchEdge {
                    cursor: h.cursor.clone(),
                    node: SearchHit(h),
                })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct SearchProgress {
    pub done: i64,
    pub total: i64,
}

/// Where this node's index stands (admins).
#[derive(SimpleObject)]
pub struct SearchStatus {
    pub enabled: bool,
    /// The index directory in use.
    pub index: String,
    pub language: String,
    /// Entries: versions and live drafts.
    pub entries: i64,
    pub size_bytes: i64,
    /// Every version up to this id is indexed.
    pub watermark: i64,
    /// Versions saved but not indexed yet.
    pub behind: i64,
    /// Live drafts waiting for editing to pause.
    pub live_pending: i64,
    pub last_commit: Option<DateTime<Utc>>,
    /// A rebuild under way.
    pub rebuild: Option<SearchProgress>,
    /// The indexer's last error, while it is failing.
    pub error: Option<String>,
}

impl SearchStatus {
    pub async fn of(app: &crate::state::AppState) -> async_graphql::Result<Self> {
        let s = app.search.status();
        let behind = if app.search.enabled() {
            app.store.version_counts(s.watermark).await.map_err(gql)?.0
        } else {
            0
        };
        Ok(Self {
            enabled: app.search.enabled(),
            index: s.index,
            language: s.language,
            entries: s.entries as i64,
            size_bytes: s.size_bytes as i64,
            watermark: s.watermark,
            behind,
            live_pending: s.live_pending as i64,
            last_commit: s.last_commit,
            rebuild: s.rebuild.map(|(done, total)| SearchProgress {
                done: done as i64,
                total: total as i64,
            }),
            error: s.error,
        })
    }
}
