//! Search over the whole history: every saved version, each document's live draft, and
//! the published content, in one tantivy index per node.
//!
//! Invariants:
//! - The index is derived state. The database is the source of truth: the indexer
//!   follows `document_versions` by id (the outbox) and `documents` by change time, and
//!   the index can be deleted at any time and rebuilt from them (`vellum reindex`).
//! - Each node keeps its own index and follows the database on its own, so every node
//!   answers the same once it has caught up; nothing is sent between nodes for search.
//! - Version entries are immutable and keyed by version id: indexing one twice (after a
//!   crash between reading and committing) replaces it, so each version is in the index
//!   once. The watermark is stored in the same commit as the entries it covers.
//! - A hit is shown only if the database says the caller may read it (access to the
//!   document, or the hit is the published version of a published document), checked on
//!   the page's rows; the index's own copy of permissions only decides what is counted
//!   and ranked, so pages are full and counts right.
//! - Mutable document state (status, the published version, the newest version,
//!   deletion) is not in the index but in [`Meta`], kept by the indexer from the same
//!   queries; filters on it are applied per hit by the collector.

mod collect;
mod indexer;
pub mod query;
mod schema;
mod snippet;

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::tokenizer::Language;
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};
use tokio::sync::Notify;
use uuid::Uuid;

pub use indexer::{Rebuilt, rebuild};

use crate::auth::Principal;
use crate::auth::policy::{self, Access};
use crate::config::SearchConfig;
use crate::documents::{DocStatus, Document};
use crate::error::{Error, Result};
use crate::publishing::{self, View};
use crate::state::AppState;
use crate::store::DocumentMeta;
use schema::Fields;

pub const DEFAULT_PAGE: usize = 10;
pub const MAX_PAGE: usize = 100;
/// How deep paging goes: ranking keeps every entry before the page.
pub const MAX_OFFSET: usize = 10_000;
const FORMAT: u32 = 1;
const CURRENT: &str = "CURRENT";
/// In an index directory while a rebuild writes it: the rebuilding process's id.
const BUILDING: &str = "BUILDING";

/// Where the indexes live: `search.dir`, or `<data_dir>/search`.
pub fn root_dir(config: &SearchConfig, data_dir: &Path) -> PathBuf {
    if config.dir.as_os_str().is_empty() {
        data_dir.join("search")
    } else {
        config.dir.clone()
    }
}

/// The search index of this node: opened from the data directory, followed by the
/// indexer ([`Search::start`]), queried by [`search`].
#[derive(Clone)]
pub struct Search(Arc<Inner>);

struct Inner {
    config: SearchConfig,
    root: PathBuf,
    language: Option<Language>,
    current: RwLock<Option<Arc<Opened>>>,
    meta: Arc<RwLock<Meta>>,
    wake: Notify,
    status: Mutex<Status>,
    stop: AtomicBool,
    stopped: Notify,
    running: AtomicBool,
    /// Test hooks: hold the indexer before its next commit, and what it is holding.
    hold_commits: AtomicBool,
    held: Notify,
    release: Notify,
    crash: AtomicBool,
    rebuilding: AtomicBool,
    /// Steps the indexer began and ended, and whether it has nothing left to do.
    steps_started: AtomicU64,
    steps: tokio::sync::watch::Sender<u64>,
    idle: AtomicBool,
    /// The next step compares every document's content with its live draft.
    sweep_now: AtomicBool,
}

/// An open index: the one `CURRENT` names.
pub struct Opened {
    pub name: String,
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
}

/// What the indexer stores with each commit: where it is in the database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Payload {
    pub format: u32,
    pub language: String,
    /// Every version with an id up to this one is indexed, but for `gaps`.
    pub watermark: i64,
    /// Ids below the watermark not seen yet (PostgreSQL can commit a version after one
    /// with a higher id), with when they were first missed (Unix ms).
    pub gaps: Vec<(i64, i64)>,
    /// Documents changed before this time are known.
    pub docs_since: Option<DateTime<Utc>>,
}

/// A document as the filters see it.
#[derive(Debug, Clone)]
pub struct DocInfo {
    pub title: String,
    pub status: String,
    pub owner: Uuid,
    pub published_version: Option<i64>,
    pub latest_version: Option<i64>,
    pub deleted: bool,
    pub updated_at: DateTime<Utc>,
}

impl DocInfo {
    fn public_version(&self) -> Option<i64> {
        (self.status == "published" && !self.deleted)
            .then_some(self.published_version)
            .flatten()
    }
}

/// What a document's row, read again, asks of the index.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DocChange {
    /// Not seen before: its live draft is indexed.
    New,
    /// Retitled: its live draft is indexed again.
    Title,
    /// Deleted: its entries go.
    Deleted,
    /// Nothing in the index (status, publication and the rest are read from [`Meta`]).
    None,
}

/// Documents' mutable state, as of the indexer's last read.
#[derive(Default)]
pub struct Meta {
    docs: HashMap<Uuid, DocInfo>,
    /// The published versions of published documents.
    public: HashSet<i64>,
    /// Each document's newest version.
    latest: HashSet<i64>,
}

impl Meta {
    pub(crate) fn apply(&mut self, row: DocumentMeta) -> DocChange {
        let info = DocInfo {
            title: row.title,
            status: row.status,
            owner: row.owner_id,
            published_version: row.published_version_id,
            latest_version: row.latest_version_id,
            deleted: row.deleted_at.is_some(),
            updated_at: row.updated_at,
        };
        let old = self.docs.get(&row.id);
        let change = match old {
            None if info.deleted => DocChange::Deleted,
            None => DocChange::New,
            Some(o) if info.deleted && !o.deleted => DocChange::Deleted,
            Some(o) if o.title != info.title => DocChange::Title,
            Some(_) => DocChange::None,
        };
        if let Some(o) = old {
            if let Some(v) = o.public_version() {
                self.public.remove(&v);
            }
            if let Some(v) = o.latest_version {
                self.latest.remove(&v);
            }
        }
        let mut info = info;
        // The newest version seen, whichever query saw it first.
        info.latest_version = info.latest_version.max(old.and_then(|o| o.latest_version));
        if let Some(v) = info.public_version() {
            self.public.insert(v);
        }
        if !info.deleted
            && let Some(v) = info.latest_version
        {
            self.latest.insert(v);
        }
        self.docs.insert(row.id, info);
        change
    }

    /// A version was indexed: it may be its document's newest.
    pub(crate) fn note_version(&mut self, document: Uuid, version: i64) {
        let Some(info) = self.docs.get_mut(&document) else {
            return;
        };
        if info.latest_version.is_some_and(|v| v >= version) {
            return;
        }
        if let Some(v) = info.latest_version {
            self.latest.remove(&v);
        }
        info.latest_version = Some(version);
        if !info.deleted {
            self.latest.insert(version);
        }
    }

    pub(crate) fn is_deleted(&self, document: Uuid) -> bool {
        self.docs.get(&document).is_some_and(|d| d.deleted)
    }

    pub(crate) fn title(&self, document: Uuid) -> Option<&str> {
        self.docs.get(&document).map(|d| d.title.as_str())
    }
}

/// Where the indexer is, for the admin UI and `/readyz`-style checks.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The index directory in use.
    pub index: String,
    pub language: String,
    /// Entries in the index (versions and live drafts).
    pub entries: u64,
    pub size_bytes: u64,
    /// Every version up to this id is indexed.
    pub watermark: i64,
    /// Live drafts waiting to be indexed (edited in the last seconds).
    pub live_pending: usize,
    pub last_commit: Option<DateTime<Utc>>,
    /// A rebuild under way: versions indexed of how many.
    pub rebuild: Option<(u64, u64)>,
    /// The indexer's last error, if it is failing.
    pub error: Option<String>,
}

impl Search {
    /// Opens (or creates) the index under the data directory. Fails on a bad setting or
    /// an unusable directory; an index built with another language or format is
    /// replaced by an empty one that the indexer fills from the database.
    pub fn open(config: &SearchConfig, data_dir: &Path) -> anyhow::Result<Search> {
        let language = schema::parse_language(&config.language)?;
        let root = root_dir(config, data_dir);
        let search = Search(Arc::new(Inner {
            config: config.clone(),
            root,
            language,
            current: RwLock::new(None),
            meta: Arc::new(RwLock::new(Meta::default())),
            wake: Notify::new(),
            status: Mutex::new(Status::default()),
            stop: AtomicBool::new(false),
            stopped: Notify::new(),
            running: AtomicBool::new(false),
            hold_commits: AtomicBool::new(false),
            held: Notify::new(),
            release: Notify::new(),
            crash: AtomicBool::new(false),
            rebuilding: AtomicBool::new(false),
            steps_started: AtomicU64::new(0),
            steps: tokio::sync::watch::channel(0).0,
            idle: AtomicBool::new(false),
            sweep_now: AtomicBool::new(false),
        }));
        if config.enabled {
            std::fs::create_dir_all(&search.0.root)
                .map_err(|e| anyhow::anyhow!("search: creating {}: {e}", search.0.root.display()))?;
            let opened = search.open_current()?;
            search.set_status(|s| {
                s.index = opened.name.clone();
                s.language = config.language.clone();
            });
            *search.0.current.write().expect("search lock") = Some(Arc::new(opened));
        }
        Ok(search)
    }

    pub fn enabled(&self) -> bool {
        self.0.config.enabled
    }

    pub fn config(&self) -> &SearchConfig {
        &self.0.config
    }

    /// Starts following the database (a background task).
    pub fn start(&self, app: AppState) {
        if !self.enabled() || self.0.running.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(indexer::run(app));
    }

    /// Something was written that the indexer should look at now rather than at its
    /// next poll.
    pub fn touch(&self) {
        self.0.wake.notify_one();
    }

    pub fn status(&self) -> Status {
        self.0.status.lock().expect("search status lock").clone()
    }

    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.0.status.lock().expect("search status lock"));
    }

    pub fn opened(&self) -> Option<Arc<Opened>> {
        self.0.current.read().expect("search lock").clone()
    }

    /// Stops the indexer after its current step (a graceful shutdown: what it read is
    /// committed). Returns once it has stopped.
    pub async fn shutdown(&self) {
        if !self.0.running.load(Ordering::SeqCst) {
            return;
        }
        let stopped = self.0.stopped.notified();
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.wake.notify_one();
        self.0.release.notify_one();
        stopped.await;
    }

    /// Rebuilds the index from the database in the background (see [`rebuild`]); this
    /// node answers from the old index until the new one is complete, then switches.
    pub fn start_rebuild(&self, app: &AppState) -> Result<()> {
        if !self.enabled() {
            return Err(Error::Busy(
                "search is turned off on this server (search.enabled)".into(),
            ));
        }
        if self.0.rebuilding.swap(true, Ordering::SeqCst) {
            return Err(Error::Busy("a rebuild of the search index is already under way".into()));
        }
        // Under way from now on, for whoever polls the status next.
        self.set_status(|st| st.rebuild = Some((0, 0)));
        let (search, store) = (self.clone(), app.store.clone());
        let data_dir = app.config.server.data_dir.clone();
        tokio::spawn(async move {
            let s = search.clone();
            let result = rebuild(&store, &search.0.config, &data_dir, move |done, total| {
                s.set_status(|st| st.rebuild = Some((done, total)));
            })
            .await;
            match result {
                Ok(r) => {
                    tracing::info!(index = %r.index, versions = r.versions, live = r.live_drafts, "search: rebuilt")
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "search: the rebuild failed");
                    search.set_status(|st| st.error = Some(format!("rebuild: {e:#}")));
                }
            }
            search.set_status(|st| st.rebuild = None);
            search.0.rebuilding.store(false, Ordering::SeqCst);
            search.touch();
        });
        Ok(())
    }

    /// Resolves once the indexer has looked at the database after this call and has
    /// nothing left to do: every version saved before the call, every metadata change
    /// and every edit made durable (debounce included) is searchable. Fails after
    /// `timeout`. For tests and tools; a server never waits for its index.
    pub async fn settled(&self, app: &AppState, timeout: std::time::Duration) -> anyhow::Result<()> {
        let mut rx = self.0.steps.subscribe();
        let begun = self.0.steps_started.load(Ordering::SeqCst);
        let newest = app.store.version_counts(0).await?.1;
        self.0.sweep_now.store(true, Ordering::SeqCst);
        self.touch();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let finished = *rx.borrow_and_update();
            let status = self.status();
            if finished > begun
                && self.0.idle.load(Ordering::SeqCst)
                && app.collab.content_changes().is_empty()
                && status.watermark >= newest
                && status.live_pending == 0
            {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                anyhow::bail!("the search index did not settle within {timeout:?}: {status:?}");
            }
        }
    }

    /// Test hook: the indexer holds before each commit until [`Search::release_commits`];
    /// resolves once it holds one.
    #[doc(hidden)]
    pub fn hold_commits(&self) {
        self.0.hold_commits.store(true, Ordering::SeqCst);
    }

    /// Test hook: resolves when the indexer holds a commit (see [`Search::hold_commits`]).
    #[doc(hidden)]
    pub async fn wait_held(&self) {
        self.0.held.notified().await
    }

    #[doc(hidden)]
    pub fn release_commits(&self) {
        self.0.hold_commits.store(false, Ordering::SeqCst);
        self.0.release.notify_one();
    }

    /// Test hook: the indexer stops without committing what it holds, as a process
    /// killed between reading versions and committing them would.
    #[doc(hidden)]
    pub async fn crash(&self) {
        self.0.crash.store(true, Ordering::SeqCst);
        self.shutdown().await;
    }

    /// Opens the index `CURRENT` names, or makes a new one.
    fn open_current(&self) -> anyhow::Result<Opened> {
        let root = &self.0.root;
        let name = std::fs::read_to_string(root.join(CURRENT))
            .ok()
            .map(|s| s.trim().to_string());
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            match self.open_dir(&name) {
                Ok(Some(opened)) => {
                    remove_other_indexes(root, &name);
                    return Ok(opened);
                }
                Ok(None) => {
                    tracing::warn!(index = %name, "the search index was built with another language or format; building a new one from the database")
                }
                Err(e) => {
                    tracing::warn!(index = %name, error = %e, "the search index does not open; building a new one from the database")
                }
            }
        }
        let name = new_index_dir(root, &self.0.config.language)?;
        write_current(root, &name)?;
        remove_other_indexes(root, &name);
        self.open_dir(&name)?
            .ok_or_else(|| anyhow::anyhow!("a new search index does not open"))
    }

    fn open_dir(&self, name: &str) -> anyhow::Result<Option<Opened>> {
        let index = Index::open_in_dir(self.0.root.join(name))?;
        let payload = read_payload(&index)?;
        if payload.format != FORMAT || payload.language != self.0.config.language {
            return Ok(None);
        }
        schema::register(&index, self.0.language);
        let fields = fields_of(&index)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Some(Opened {
            name: name.to_string(),
            index,
            reader,
            fields,
        }))
    }

    /// Whether `CURRENT` names another index than the open one (a rebuild finished).
    fn switched(&self) -> Option<String> {
        let name = std::fs::read_to_string(self.0.root.join(CURRENT)).ok()?;
        let name = name.trim();
        let open = self.opened()?;
        (name != open.name && !name.is_empty()).then(|| name.to_string())
    }
}

fn fields_of(index: &Index) -> anyhow::Result<Fields> {
    let s = index.schema();
    let f = |n: &str| {
        s.get_field(n)
            .map_err(|_| anyhow::anyhow!("the search index has no field `{n}`"))
    };
    Ok(Fields {
        key: f("key")?,
        doc: f("doc")?,
        doc_hi: f("doc_hi")?,
        doc_lo: f("doc_lo")?,
        version_id: f("version_id")?,
        number: f("number")?,
        title: f("title")?,
        title_raw: f("title_raw")?,
        label: f("label")?,
        label_raw: f("label_raw")?,
        author: f("author")?,
        created_at: f("created_at")?,
        body: f("body")?,
        body_raw: f("body_raw")?,
        seq: f("seq")?,
    })
}

pub(crate) fn read_payload(index: &Index) -> anyhow::Result<Payload> {
    Ok(match index.load_metas()?.payload {
        Some(p) => serde_json::from_str(&p)?,
        None => Payload::default(),
    })
}

/// Creates an empty index in a new directory under `root`, with a first commit that
/// records its language; returns the directory's name.
pub(crate) fn new_index_dir(root: &Path, language: &str) -> anyhow::Result<String> {
    let name = format!("index-{}", Uuid::now_v7().simple());
    let dir = root.join(&name);
    std::fs::create_dir_all(&dir)?;
    let (schema, _) = schema::schema();
    let index = Index::create_in_dir(&dir, schema)?;
    schema::register(&index, schema::parse_language(language)?);
    let mut writer = index.writer::<TantivyDocument>(15_000_000)?;
    let mut commit = writer.prepare_commit()?;
    commit.set_payload(&serde_json::to_string(&Payload {
        format: FORMAT,
        language: language.to_string(),
        ..Payload::default()
    })?);
    commit.commit()?;
    Ok(name)
}

/// Points `CURRENT` at `name`, atomically (a rename).
pub(crate) fn write_current(root: &Path, name: &str) -> anyhow::Result<()> {
    let tmp = root.join(format!("{CURRENT}.tmp"));
    std::fs::write(&tmp, name)?;
    std::fs::rename(&tmp, root.join(CURRENT))?;
    Ok(())
}

/// Deletes index directories other than `keep`: old ones, and rebuilds whose process
/// is gone (not one still being written).
pub(crate) fn remove_other_indexes(root: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("index-") || name == keep {
            continue;
        }
        let builder = std::fs::read_to_string(e.path().join(BUILDING)).ok();
        let building = builder
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !building {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|it| it.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------
// Queries

/// What a search may be narrowed to.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub document_id: Option<Uuid>,
    pub author: Option<Uuid>,
    /// The document's status now.
    pub status: Option<DocStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only each document's newest version.
    pub latest_only: bool,
    /// Only the published version of published documents.
    pub published_only: bool,
    /// `Some(true)`: only live drafts; `Some(false)`: only versions; `None`: both.
    pub live: Option<bool>,
}

/// One hit: a version, or a document's live draft.
#[derive(Debug, Clone)]
pub struct Hit {
    pub document: Document,
    pub access: Access,
    /// `None` for a live draft.
    pub version_id: Option<i64>,
    pub version_number: Option<i64>,
    pub title: String,
    /// The title, escaped, with the matched words in `<mark>`.
    pub title_html: String,
    pub label: String,
    pub author_id: Option<Uuid>,
    /// When the version was saved (a live draft: when it was last indexed).
    pub created_at: DateTime<Utc>,
    pub score: f32,
    /// Fragments of the text around the matches, escaped, with `<mark>` around them.
    pub snippets: Vec<String>,
    /// Whether this is the version readers get now.
    pub published: bool,
    pub cursor: String,
}

impl Hit {
    /// How a frontend sees the document: the live one when the caller may read it.
    pub fn view(&self) -> View {
        if self.access >= Access::Read {
            View::Live
        } else {
            View::Published
        }
    }
}

#[derive(Debug, Clone)]
pub struct Page {
    pub hits: Vec<Hit>,
    pub total: usize,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

enum Scope {
    All,
    Public,
    Readable(HashSet<Uuid>),
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("search:{offset}"))
}

fn decode_cursor(c: &str) -> Result<usize> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("search:").and_then(|n| n.parse().ok()))
        .filter(|n| *n <= MAX_OFFSET)
        .ok_or_else(|| Error::validation("after", "not a cursor of this search"))
}

/// What the caller may see, and the filters that depend on documents' state now.
struct Visibility {
    meta: Arc<RwLock<Meta>>,
    scope: Scope,
    filter: Filter,
}

impl collect::Visible for Visibility {
    fn retain(&self, entries: &mut Vec<collect::Entry>) {
        let meta = self.meta.read().expect("search meta lock");
        let filter = &self.filter;
        entries.retain(|e| {
            let (doc, vid) = (e.document, e.version_id);
            let info = meta.docs.get(&doc);
            if info.is_some_and(|i| i.deleted) {
                return false;
            }
            let public = vid != 0 && meta.public.contains(&vid);
            let allowed = match &self.scope {
                Scope::All => true,
                Scope::Public => public,
                Scope::Readable(set) => set.contains(&doc) || public,
            };
            allowed
                && (!filter.published_only || public)
                && (!filter.latest_only || (vid != 0 && meta.latest.contains(&vid)))
                && filter
                    .status
                    .is_none_or(|s| info.is_some_and(|i| i.status == s.as_str()))
                && filter.live.is_none_or(|live| live == (vid == 0))
        });
    }
}

/// An entry as read from the index, before the database has had its say.
struct Found {
    document: Uuid,
    version_id: i64,
    number: i64,
    title: String,
    title_html: String,
    label: String,
    author: Option<Uuid>,
    created_at: DateTime<Utc>,
    score: f32,
    snippets: Vec<String>,
}

/// Searches what `who` may read. See the module's invariants for how permissions apply.
pub async fn search(
    app: &AppState,
    who: &Principal,
    text: &str,
    filter: Filter,
    first: Option<i64>,
    after: Option<&str>,
) -> Result<Page> {
    let search = &app.search;
    if !search.enabled() {
        return Err(Error::Busy(
            "search is turned off on this server (search.enabled)".into(),
        ));
    }
    let limit = match first {
        None => DEFAULT_PAGE,
        Some(n) if (1..=MAX_PAGE as i64).contains(&n) => n as usize,
        Some(_) => return Err(Error::validation("first", format!("must be between 1 and {MAX_PAGE}"))),
    };
    let offset = after.map(decode_cursor).transpose()?.unwrap_or(0);
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        return Err(Error::validation("filter.from", "must not be after filter.to"));
    }
    let parsed = query::parse(text).map_err(|e| Error::validation("query", e.to_string()))?;
    let scope = match who {
        Principal::Anonymous => {
            if !app.config.content.anonymous_read {
                return Err(Error::Unauthenticated);
            }
            Scope::Public
        }
        p if policy::sees_all_documents(p) => Scope::All,
        p => {
            let user = p.require_user()?;
            Scope::Readable(app.store.readable_documents(user.id).await?.into_iter().collect())
        }
    };
    let s = search.clone();
    let (total, found) = tokio::task::spawn_blocking(move || s.run_query(&parsed, &filter, scope, offset, limit))
        .await
        .map_err(anyhow::Error::from)??;
    // The database decides what is shown.
    let mut ids: Vec<Uuid> = found.iter().map(|f| f.document).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows: HashMap<Uuid, _> = app
        .store
        .documents_with_grants(&ids, who.user().map(|u| u.id))
        .await?
        .into_iter()
        .map(|(d, g)| (d.id, (d, g)))
        .collect();
    let mut hits = Vec::with_capacity(found.len());
    for (i, f) in found.into_iter().enumerate() {
        let Some((doc, grant)) = rows.get(&f.document) else {
            continue;
        };
        let access = policy::document_access(who, doc.owner_id, *grant);
        let is_published =
            f.version_id != 0 && publishing::is_public(doc) && doc.published_version_id == Some(f.version_id);
        if access < Access::Read && !is_published {
            continue;
        }
        hits.push(Hit {
            document: doc.clone(),
            access,
            version_id: (f.version_id != 0).then_some(f.version_id),
            version_number: (f.version_id != 0).then_some(f.number),
            title: f.title,
            title_html: f.title_html,
            label: f.label,
            author_id: f.author,
            created_at: f.created_at,
            score: f.score,
            snippets: f.snippets,
            published: is_published,
            cursor: encode_cursor(offset + i + 1),
        });
    }
    let end = offset + limit;
    Ok(Page {
        end_cursor: hits.last().map(|h| h.cursor.clone()),
        has_next_page: total > end && end < MAX_OFFSET,
        total,
        hits,
    })
}

impl Search {
    fn run_query(
        &self,
        parsed: &query::Node,
        filter: &Filter,
        scope: Scope,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<Found>)> {
        let opened = self
            .opened()
            .ok_or_else(|| Error::Busy("the search index is not open yet".into()))?;
        let f = &opened.fields;
        let mut builder = query::Builder {
            fields: f,
            stemmed: schema::stemmed(self.0.language),
            raw: schema::raw(),
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, builder.query(parsed))];
        let term = |field, text: String| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, &text),
                IndexRecordOption::Basic,
            ))
        };
        if let Some(d) = filter.document_id {
            clauses.push((Occur::Must, term(f.doc, d.to_string())));
        }
        if let Some(a) = filter.author {
            clauses.push((Occur::Must, term(f.author, a.to_string())));
        }
        if filter.from.is_some() || filter.to.is_some() {
            let bound = |t: Option<DateTime<Utc>>| match t {
                Some(t) => Bound::Included(Term::from_field_date_for_search(
                    f.created_at,
                    tantivy::DateTime::from_timestamp_millis(t.timestamp_millis()),
                )),
                None => Bound::Unbounded,
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(bound(filter.from), bound(filter.to))),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = opened.reader.searcher();
        // A caller who sees everything, with no filter on documents' state, needs no
        // per-hit check: the page comes from tantivy's pruned top-k and the total from a
        // count that scores nothing (a deleted document's entries, gone at the next
        // commit, are dropped from the page by the database's check meanwhile).
        let every_hit = matches!(scope, Scope::All)
            && filter.status.is_none()
            && !filter.latest_only
            && !filter.published_only
            && filter.live.is_none();
        let (total, ranked) = if every_hit {
            let top = searcher
                .search(&query, &TopDocs::with_limit(limit).and_offset(offset))
                .map_err(anyhow::Error::from)?;
            let total = query.count(&searcher).map_err(anyhow::Error::from)?;
            let page = top
                .into_iter()
                .map(|(score, address)| collect::Ranked {
                    score,
                    created_ms: 0,
                    address,
                })
                .collect::<Vec<_>>();
            (total, page)
        } else {
            let collector = collect::Hits {
                visible: Arc::new(Visibility {
                    meta: self.0.meta.clone(),
                    scope,
                    filter: filter.clone(),
                }),
                keep: offset + limit,
            };
            let (total, ranked) = searcher.search(&query, &collector).map_err(anyhow::Error::from)?;
            (total, ranked.into_iter().skip(offset).collect())
        };
        let body_marks = builder.marks(parsed, query::Target::Body);
        let title_marks = builder.marks(parsed, query::Target::Title);
        let mut analyzer = snippet::Highlighter::new(self.0.language);
        let chars = self.0.config.snippet_chars.max(40);
        let mut found = Vec::new();
        for r in ranked {
            let doc: TantivyDocument = searcher.doc(r.address).map_err(anyhow::Error::from)?;
            let text = |field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let int = |field| doc.get_first(field).and_then(|v| v.as_i64()).unwrap_or(0);
            let Ok(document) = Uuid::parse_str(&text(f.doc)) else {
                continue;
            };
            let title = text(f.title);
            let body = doc.get_first(f.body).and_then(|v| v.as_str()).unwrap_or("");
            found.push(Found {
                document,
                version_id: int(f.version_id),
                number: int(f.number),
                title_html: snippet::highlight_all(&mut analyzer, &title, &title_marks),
                title,
                label: text(f.label),
                author: Uuid::parse_str(&text(f.author)).ok(),
                created_at: doc
                    .get_first(f.created_at)
                    .and_then(|v| v.as_datetime())
                    .and_then(|d| DateTime::from_timestamp_millis(d.into_timestamp_millis()))
                    .unwrap_or_default(),
                score: r.score,
                snippets: snippet::snippets(&mut analyzer, body, &body_marks, chars, 2),
            });
        }
        Ok((total, found))
    }
}
