//! The indexer: follows the database and commits what it finds, in batches, off the
//! async executor; and [`rebuild`], which builds a whole new index beside the one in use.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tantivy::{IndexWriter, TantivyDocument, Term};
use uuid::Uuid;

use super::schema::Fields;
use super::{DocChange, Meta, Opened, Payload, Search, dir_size, read_payload, remove_other_indexes};
use crate::config::SearchConfig;
use crate::state::AppState;
use crate::store::{Store, VersionText};

/// Live drafts indexed per step, at most (each is a read of the document's state).
const LIVE_BATCH: usize = 32;
/// Missing version ids remembered, at most.
const MAX_GAPS: usize = 10_000;
/// Document rows changed this long before the newest one seen are read again (commits
/// land a little after the time they record, and nodes' clocks differ a little).
const DOCS_LOOKBACK_SECS: i64 = 10;

enum Op {
    /// Replace the entry with this key.
    Put(Term, Box<TantivyDocument>),
    /// Delete every entry of a document.
    DeleteDocument(Uuid),
}

fn millis(t: DateTime<Utc>) -> tantivy::DateTime {
    tantivy::DateTime::from_timestamp_millis(t.timestamp_millis())
}

fn base(f: &Fields, key: &str, document: Uuid, title: &str) -> TantivyDocument {
    let mut d = TantivyDocument::default();
    d.add_text(f.key, key);
    d.add_text(f.doc, document.to_string());
    let (hi, lo) = document.as_u64_pair();
    d.add_u64(f.doc_hi, hi);
    d.add_u64(f.doc_lo, lo);
    d.add_text(f.title, title);
    d.add_text(f.title_raw, title);
    d
}

fn version_entry(f: &Fields, v: &VersionText) -> Op {
    let key = format!("v:{}", v.id);
    let mut d = base(f, &key, v.document_id, &v.title);
    d.add_i64(f.version_id, v.id);
    d.add_i64(f.number, v.number);
    d.add_text(f.label, &v.label);
    d.add_text(f.label_raw, &v.label);
    if let Some(a) = v.author_id {
        d.add_text(f.author, a.to_string());
    }
    d.add_date(f.created_at, millis(v.created_at));
    d.add_text(f.body, &v.text);
    d.add_text(f.body_raw, &v.text);
    d.add_i64(f.seq, 0);
    Op::Put(Term::from_field_text(f.key, &key), Box::new(d))
}

fn live_entry(f: &Fields, document: Uuid, title: &str, text: &str, seq: i64) -> Op {
    let key = format!("l:{document}");
    let mut d = base(f, &key, document, title);
    d.add_i64(f.version_id, 0);
    d.add_i64(f.number, 0);
    d.add_text(f.label, "");
    d.add_date(f.created_at, millis(Utc::now()));
    d.add_text(f.body, text);
    d.add_text(f.body_raw, text);
    d.add_i64(f.seq, seq);
    Op::Put(Term::from_field_text(f.key, &key), Box::new(d))
}

/// Applies `ops` and commits them with `payload`, then makes them searchable.
fn commit(writer: &mut IndexWriter, opened: &Opened, ops: Vec<Op>, payload: &Payload) -> anyhow::Result<u64> {
    let f = &opened.fields;
    for op in ops {
        match op {
            Op::Put(key, doc) => {
                writer.delete_term(key);
                writer.add_document(*doc)?;
            }
            Op::DeleteDocument(id) => {
                writer.delete_term(Term::from_field_text(f.doc, &id.to_string()));
            }
        }
    }
    let mut c = writer.prepare_commit()?;
    c.set_payload(&serde_json::to_string(payload)?);
    c.commit()?;
    opened.reader.reload()?;
    Ok(opened.reader.searcher().num_docs())
}

/// The sequence number each live draft in the index was indexed at.
fn live_seqs(opened: &Opened) -> anyhow::Result<HashMap<Uuid, i64>> {
    let mut out = HashMap::new();
    let searcher = opened.reader.searcher();
    for seg in searcher.segment_readers() {
        let ff = seg.fast_fields();
        let (hi, lo, vid, seq) = (
            ff.u64("doc_hi")?,
            ff.u64("doc_lo")?,
            ff.i64("version_id")?,
            ff.i64("seq")?,
        );
        for doc in seg.doc_ids_alive() {
            if vid.first(doc) == Some(0)
                && let (Some(h), Some(l)) = (hi.first(doc), lo.first(doc))
            {
                out.insert(Uuid::from_u64_pair(h, l), seq.first(doc).unwrap_or(0));
            }
        }
    }
    Ok(out)
}

/// A live draft waiting to be indexed: its first and last unindexed edit, or due now.
#[derive(Clone, Copy)]
struct Pending {
    first: Instant,
    last: Instant,
    now: bool,
}

struct Following {
    opened: Arc<Opened>,
    writer: Arc<Mutex<IndexWriter>>,
    payload: Payload,
    live_seq: HashMap<Uuid, i64>,
    pending: HashMap<Uuid, Pending>,
    last_sweep: Option<Instant>,
}

impl Following {
    async fn start(app: &AppState) -> anyhow::Result<Following> {
        let search = &app.search;
        let opened = search
            .opened()
            .ok_or_else(|| anyhow::anyhow!("the search index is not open"))?;
        let heap = search.config().writer_mib.max(15) * 1_000_000;
        let o = opened.clone();
        let (writer, payload, live_seq) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            // tantivy's writer lock is an advisory lock on a file: a process that died
            // holding it released it, whatever file it left behind.
            let writer = o
                .index
                .writer_with_num_threads::<TantivyDocument>(1, heap)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "opening the search index for writing ({e}); is another server using this data directory?"
                    )
                })?;
            Ok((writer, read_payload(&o.index)?, live_seqs(&o)?))
        })
        .await??;
        // Documents' state, all of it; deletions made while this node was away are applied.
        let rows = app.store.documents_meta(None).await?;
        let mut payload = payload;
        let mut deleted = Vec::new();
        {
            let mut meta = search.0.meta.write().expect("search meta lock");
            *meta = Meta::default();
            let since = payload
                .docs_since
                .map(|t| t - chrono::Duration::seconds(DOCS_LOOKBACK_SECS));
            for row in rows {
                let (id, at) = (row.id, row.updated_at);
                if meta.apply(row) == DocChange::Deleted && since.is_none_or(|s| at >= s) {
                    deleted.push(id);
                }
                payload.docs_since = payload.docs_since.max(Some(at));
            }
        }
        let mut following = Following {
            opened,
            writer: Arc::new(Mutex::new(writer)),
            payload,
            live_seq,
            pending: HashMap::new(),
            last_sweep: None,
        };
        for id in &deleted {
            following.live_seq.remove(id);
        }
        let ops = deleted.into_iter().map(Op::DeleteDocument).collect::<Vec<_>>();
        if !ops.is_empty() {
            following.commit(app, ops).await?;
        }
        following.report(app, None);
        Ok(following)
    }

    async fn commit(&mut self, app: &AppState, ops: Vec<Op>) -> anyhow::Result<()> {
        let (writer, opened, payload) = (self.writer.clone(), self.opened.clone(), self.payload.clone());
        let entries = tokio::task::spawn_blocking(move || {
            let mut w = writer.lock().expect("search writer lock");
            commit(&mut w, &opened, ops, &payload)
        })
        .await??;
        self.report(app, Some(entries));
        Ok(())
    }

    fn report(&self, app: &AppState, entries: Option<u64>) {
        let size = dir_size(&app.search.0.root.join(&self.opened.name));
        let entries = entries.unwrap_or_else(|| self.opened.reader.searcher().num_docs());
        app.search.set_status(|s| {
            s.index = self.opened.name.clone();
            s.entries = entries;
            s.size_bytes = size;
            s.watermark = self.payload.watermark;
            s.live_pending = self.pending.len();
            s.last_commit = Some(Utc::now());
            s.error = None;
        });
    }

    /// One round: new versions, changed documents, due live drafts; one commit.
    /// Returns whether more work is waiting.
    async fn step(&mut self, app: &AppState) -> anyhow::Result<bool> {
        let search = &app.search;
        let cfg = search.config();
        let store = &app.store;
        let f = self.opened.fields;
        let now_ms = Utc::now().timestamp_millis();
        let mut ops = Vec::new();
        let mut changed = false;

        // Versions: those after the watermark, and the ones missing below it.
        let batch = cfg.batch.max(1);
        let rows = store.versions_after(self.payload.watermark, batch).await?;
        let more_versions = rows.len() == batch as usize;
        let gap_ids: Vec<i64> = self.payload.gaps.iter().map(|g| g.0).collect();
        let late = store.versions_by_ids(&gap_ids).await?;
        let before = self.payload.gaps.len();
        let got: HashSet<i64> = late.iter().map(|v| v.id).collect();
        let wait_ms = (cfg.gap_wait_secs * 1000) as i64;
        self.payload
            .gaps
            .retain(|(id, seen)| !got.contains(id) && now_ms - seen < wait_ms);
        changed |= self.payload.gaps.len() != before;
        let mut prev = self.payload.watermark;
        for r in &rows {
            for missing in (prev + 1)..r.id {
                if self.payload.gaps.len() < MAX_GAPS {
                    self.payload.gaps.push((missing, now_ms));
                }
            }
            prev = r.id;
        }
        if let Some(last) = rows.last() {
            self.payload.watermark = last.id;
            changed = true;
        }

        // Documents changed since the last look.
        let since = self
            .payload
            .docs_since
            .map(|t| t - chrono::Duration::seconds(DOCS_LOOKBACK_SECS));
        let docs = store.documents_meta(since).await?;
        let now = Instant::now();
        let due_now = Pending {
            first: now,
            last: now,
            now: true,
        };
        {
            let mut meta = search.0.meta.write().expect("search meta lock");
            for d in docs {
                let (id, at) = (d.id, d.updated_at);
                match meta.apply(d) {
                    DocChange::Deleted => {
                        ops.push(Op::DeleteDocument(id));
                        self.live_seq.remove(&id);
                        self.pending.remove(&id);
                    }
                    DocChange::Title | DocChange::New => {
                        self.pending.insert(id, due_now);
                    }
                    DocChange::None => {}
                }
                if Some(at) > self.payload.docs_since {
                    self.payload.docs_since = Some(at);
                    changed = true;
                }
            }
            for v in rows.iter().chain(late.iter()) {
                if meta.is_deleted(v.document_id) {
                    continue;
                }
                meta.note_version(v.document_id, v.id);
                ops.push(version_entry(&f, v));
            }
        }

        // Live drafts: edited on this node, found behind by the sweep, or retitled.
        for id in app.collab.content_changes().take() {
            self.pending.entry(id).and_modify(|p| p.last = now).or_insert(Pending {
                first: now,
                last: now,
                now: false,
            });
        }
        // The sweep runs at start, when asked, and then every `live_sweep_secs` only where
        // other nodes may edit too (PostgreSQL): an SQLite database has one server, whose
        // rooms mark every edit, and the sweep's scan of the update log cost the trace
        // replay's p99 at 128 typists 17 → 46 ms (BENCHMARKS.md, "Search").
        let periodic = store.backend() == crate::store::Backend::Postgres && cfg.live_sweep_secs > 0;
        if search.0.sweep_now.swap(false, Ordering::SeqCst)
            || self.last_sweep.is_none()
            || (periodic
                && self
                    .last_sweep
                    .is_some_and(|t| t.elapsed() >= Duration::from_secs(cfg.live_sweep_secs)))
        {
            self.last_sweep = Some(now);
            for (id, seq) in store.content_seqs().await? {
                if self.live_seq.get(&id).is_none_or(|s| *s < seq) {
                    self.pending.entry(id).or_insert(due_now);
                }
            }
        }
        let (delay, max_delay) = (
            Duration::from_millis(cfg.live_delay_ms),
            Duration::from_millis(cfg.live_max_delay_ms),
        );
        let mut due: Vec<Uuid> = self
            .pending
            .iter()
            .filter(|(_, p)| p.now || now - p.last >= delay || now - p.first >= max_delay)
            .map(|(id, _)| *id)
            .collect();
        let more_live = due.len() > LIVE_BATCH;
        due.truncate(LIVE_BATCH);
        for id in due {
            self.pending.remove(&id);
            let title = {
                let meta = search.0.meta.read().expect("search meta lock");
                if meta.is_deleted(id) {
                    continue;
                }
                meta.title(id).map(str::to_string)
            };
            let Some(title) = title else { continue };
            match crate::collab::durable_body(store, id).await {
                Ok((body, seq)) => {
                    let text = body.text();
                    ops.push(live_entry(&f, id, &title, &text, seq));
                    self.live_seq.insert(id, seq);
                }
                Err(e) => tracing::warn!(document = %id, error = %e, "search: reading a live draft failed"),
            }
        }

        if ops.is_empty() && !changed {
            search.set_status(|s| s.live_pending = self.pending.len());
            return Ok(more_versions || more_live);
        }
        // Test hook: hold here, or stop as if killed, with what was read not committed.
        if search.0.hold_commits.load(Ordering::SeqCst) {
            search.0.held.notify_one();
            while search.0.hold_commits.load(Ordering::SeqCst)
                && !search.0.crash.load(Ordering::SeqCst)
                && !search.0.stop.load(Ordering::SeqCst)
            {
                search.0.release.notified().await;
            }
        }
        if search.0.crash.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.commit(app, ops).await?;
        Ok(more_versions || more_live)
    }
}

/// The indexer's task: opens, follows, and switches to a rebuilt index when `CURRENT`
/// names one; retries after errors; ends on [`Search::shutdown`].
pub(super) async fn run(app: AppState) {
    let search = app.search.clone();
    let poll = Duration::from_millis(search.config().poll_ms.max(10));
    let mut following: Option<Following> = None;
    while !search.0.stop.load(Ordering::SeqCst) {
        if let Some(name) = search.switched() {
            following = None;
            match search.open_dir(&name) {
                Ok(Some(opened)) => {
                    tracing::info!(index = %name, "search: switching to the rebuilt index");
                    *search.0.current.write().expect("search lock") = Some(Arc::new(opened));
                    remove_other_indexes(&search.0.root, &name);
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(index = %name, "search: the rebuilt index does not open; keeping the old one")
                }
            }
        }
        if following.is_none() {
            match Following::start(&app).await {
                Ok(f) => following = Some(f),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "search: the indexer cannot start; retrying");
                    search.set_status(|s| s.error = Some(format!("{e:#}")));
                    wait(&search, Duration::from_secs(2)).await;
                    continue;
                }
            }
        }
        let Some(f) = following.as_mut() else { continue };
        search.0.steps_started.fetch_add(1, Ordering::SeqCst);
        search.0.idle.store(false, Ordering::SeqCst);
        let stepped = f.step(&app).await;
        search.0.idle.store(matches!(stepped, Ok(false)), Ordering::SeqCst);
        search.0.steps.send_modify(|n| *n += 1);
        let more = match stepped {
            Ok(more) => more,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "search: indexing failed; starting again from the last commit");
                search.set_status(|s| s.error = Some(format!("{e:#}")));
                following = None;
                wait(&search, Duration::from_secs(1)).await;
                continue;
            }
        };
        if search.0.crash.load(Ordering::SeqCst) {
            break;
        }
        if !more {
            wait(&search, poll).await;
        }
    }
    drop(following);
    search.0.running.store(false, Ordering::SeqCst);
    search.0.stopped.notify_waiters();
}

/// Until the next poll, or a wake-up ([`Search::touch`]: a version saved here). Edits do
/// not wake it: live drafts wait for editing to pause anyway, and waking on every edit
/// ran a step per group commit (the trace replay's p99 at 128 typists went from 17 ms to
/// 46 ms; BENCHMARKS.md, "Search").
async fn wait(search: &Search, d: Duration) {
    tokio::select! {
        _ = search.0.wake.notified() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// What [`rebuild`] made.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub index: String,
    pub versions: u64,
    pub live_drafts: u64,
    pub size_bytes: u64,
}

/// Builds a new index from the database beside the one in use, then points `CURRENT`
/// at it: a running server keeps answering from its index until then, and switches at
/// its next poll. `progress(done, total)` is called as versions and drafts are indexed.
pub async fn rebuild(
    store: &Store,
    config: &SearchConfig,
    data_dir: &Path,
    progress: impl Fn(u64, u64) + Send,
) -> anyhow::Result<Rebuilt> {
    let root = super::root_dir(config, data_dir);
    std::fs::create_dir_all(&root)?;
    let language = super::schema::parse_language(&config.language)?;
    let name = super::new_index_dir(&root, &config.language)?;
    let dir = root.join(&name);
    std::fs::write(dir.join(super::BUILDING), std::process::id().to_string())?;
    let index = tantivy::Index::open_in_dir(&dir)?;
    super::schema::register(&index, language);
    let f = super::fields_of(&index)?;
    let mut writer = index.writer::<TantivyDocument>(config.writer_mib.max(15) * 1_000_000)?;
    let mut payload = read_payload(&index)?;
    let mut meta = Meta::default();
    let rows = store.documents_meta(None).await?;
    let documents: Vec<Uuid> = rows.iter().filter(|r| r.deleted_at.is_none()).map(|r| r.id).collect();
    for row in rows {
        payload.docs_since = payload.docs_since.max(Some(row.updated_at));
        meta.apply(row);
    }
    let (versions, newest) = store.version_counts(0).await?;
    let total = versions as u64 + documents.len() as u64;
    let mut done = 0u64;
    progress(0, total);
    let mut indexed = 0u64;
    let mut tail = HashSet::new();
    loop {
        let rows = store.versions_after(payload.watermark, 1000).await?;
        let Some(last) = rows.last() else { break };
        payload.watermark = last.id;
        tail.extend(rows.iter().map(|v| v.id).filter(|id| *id > newest - 1000));
        done += rows.len() as u64;
        let ops: Vec<Op> = rows
            .iter()
            .filter(|v| !meta.is_deleted(v.document_id))
            .map(|v| version_entry(&f, v))
            .collect();
        indexed += ops.len() as u64;
        writer = add_all(writer, ops).await?;
        progress(done, total);
    }
    // Ids just below the newest that were not there may still commit (PostgreSQL): the
    // indexer looks for them again, as for any gap.
    let now_ms = Utc::now().timestamp_millis();
    payload.gaps = ((newest - 999).max(1)..=payload.watermark)
        .filter(|id| !tail.contains(id))
        .map(|id| (id, now_ms))
        .collect();
    let mut live = 0u64;
    for chunk in documents.chunks(64) {
        let mut ops = Vec::new();
        for id in chunk {
            let Some(title) = meta.title(*id).map(str::to_string) else {
                continue;
            };
            if let Ok((body, seq)) = crate::collab::durable_body(store, *id).await {
                ops.push(live_entry(&f, *id, &title, &body.text(), seq));
                live += 1;
            }
        }
        done += chunk.len() as u64;
        writer = add_all(writer, ops).await?;
        progress(done, total);
    }
    let reader = index.reader()?;
    let opened = Opened {
        name: name.clone(),
        index,
        reader,
        fields: f,
    };
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        commit(&mut writer, &opened, Vec::new(), &payload)?;
        writer.wait_merging_threads()?;
        Ok(())
    })
    .await??;
    let _ = std::fs::remove_file(dir.join(super::BUILDING));
    super::write_current(&root, &name)?;
    Ok(Rebuilt {
        size_bytes: dir_size(&dir),
        index: name,
        versions: indexed,
        live_drafts: live,
    })
}

async fn add_all(writer: IndexWriter, ops: Vec<Op>) -> anyhow::Result<IndexWriter> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<IndexWriter> {
        for op in ops {
            if let Op::Put(_, doc) = op {
                writer.add_document(*doc)?;
            }
        }
        Ok(writer)
    })
    .await?
}
