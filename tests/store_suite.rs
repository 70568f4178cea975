//! The storage test suite: each test is written once and runs on SQLite and PostgreSQL,
//! each on a fresh database.

mod common;

use std::collections::HashSet;

use sqlx::Connection;

use common::{Backend, TestDb};
use vellum::auth::{Grant, Role, TokenScope};
use vellum::documents::DocStatus;
use vellum::store::{CursorKey, ListQuery, MetadataChange, NewUpdate, OrderField, Store, UpdateOutcome};

async fn user(store: &Store, email: &str) -> vellum::auth::User {
    store
        .create_user(email, "Someone", "not-a-hash", None, Role::Author)
        .await
        .unwrap()
        .unwrap()
}

async fn first_user_is_admin_and_emails_are_unique(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = user(&store, "a@example.com").await;
    let b = user(&store, "b@example.com").await;
    assert_eq!(a.role, Role::Admin);
    assert_eq!(b.role, Role::Author);
    let dup = store
        .create_user("a@example.com", "Again", "h", None, Role::Author)
        .await
        .unwrap();
    assert!(dup.is_none(), "a taken email is refused");
    let v = store
        .create_user("v@example.com", "V", "h", Some(Role::Viewer), Role::Author)
        .await
        .unwrap();
    assert_eq!(v.unwrap().role, Role::Viewer);
    assert_eq!(store.count_users().await.unwrap(), 3);
    let (found, hash) = store.credentials("a@example.com").await.unwrap().unwrap();
    assert_eq!((found.id, hash.as_str()), (a.id, "not-a-hash"));
    assert_eq!(store.user_by_id(b.id).await.unwrap().unwrap().email, "b@example.com");
}

async fn migrations_are_idempotent(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn slugs_are_unique_among_live_documents(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let owner = user(&store, "o@example.com").await;
    let d = store.create_document(owner.id, "One", "one").await.unwrap().unwrap();
    assert_eq!((d.lock_version, d.status), (1, DocStatus::Draft));
    assert!(store.create_document(owner.id, "Other", "one").await.unwrap().is_none());
    assert!(store.delete_document(d.id).await.unwrap());
    assert!(
        !store.delete_document(d.id).await.unwrap(),
        "deleting twice finds nothing"
    );
    assert!(
        store.document_by_id(d.id, None).await.unwrap().is_none(),
        "deleted is invisible"
    );
    let again = store.create_document(owner.id, "One again", "one").await.unwrap();
    assert!(again.is_some(), "a deleted document frees its slug");
    let (by_slug, _) = store.document_by_slug("one", None).await.unwrap().unwrap();
    assert_eq!(by_slug.title, "One again");
}

async fn stale_lock_version_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let owner = user(&store, "o@example.com").await;
    let d = store.create_document(owner.id, "T", "t").await.unwrap().unwrap();
    let change = MetadataChange {
        title: Some("T2"),
        status: Some(DocStatus::InReview),
        ..Default::default()
    };
    let UpdateOutcome::Updated(d2) = store.update_document(d.id, 1, &change).await.unwrap() else {
        panic!("first write succeeds");
    };
    assert_eq!((d2.lock_version, d2.title.as_str(), d2.slug.as_str()), (2, "T2", "t"));
    assert!(d2.updated_at >= d.updated_at);
    let again = MetadataChange {
        title: Some("T3"),
        ..Default::default()
    };
    match store.update_document(d.id, 1, &again).await.unwrap() {
        UpdateOutcome::Stale(current) => {
            assert_eq!((current.lock_version, current.title.as_str()), (2, "T2"))
        }
        other => panic!("expected stale, got {other:?}"),
    }
    let other = store.create_document(owner.id, "U", "u").await.unwrap().unwrap();
    let steal = MetadataChange {
        slug: Some("t"),
        ..Default::default()
    };
    assert!(matches!(
        store.update_document(other.id, 1, &steal).await.unwrap(),
        UpdateOutcome::SlugTaken
    ));
    let missing = store.update_document(uuid::Uuid::now_v7(), 1, &again).await.unwrap();
    assert!(matches!(missing, UpdateOutcome::Missing));
}

async fn concurrent_writers_one_wins(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let owner = user(&store, "o@example.com").await;
    let d = store.create_document(owner.id, "T", "t").await.unwrap().unwrap();
    for round in 0..10 {
        let lock = d.lock_version + round;
        let (s1, s2) = (store.clone(), store.clone());
        let a = tokio::spawn(async move {
            s1.update_document(
                d.id,
                lock,
                &MetadataChange {
                    title: Some("from a"),
                    ..Default::default()
                },
            )
            .await
        });
        let b = tokio::spawn(async move {
            s2.update_document(
                d.id,
                lock,
                &MetadataChange {
                    title: Some("from b"),
                    ..Default::default()
                },
            )
            .await
        });
        let outcomes = [a.await.unwrap().unwrap(), b.await.unwrap().unwrap()];
        let wins = outcomes
            .iter()
            .filter(|o| matches!(o, UpdateOutcome::Updated(_)))
            .count();
        let stale = outcomes.iter().filter(|o| matches!(o, UpdateOutcome::Stale(_))).count();
        assert_eq!((wins, stale), (1, 1), "round {round}: {outcomes:?}");
    }
}

async fn listing_walks_every_visible_document_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let admin = user(&store, "admin@example.com").await;
    let author = user(&store, "author@example.com").await;
    let mut mine = HashSet::new();
    let mut all = HashSet::new();
    for i in 0..23 {
        // Repeated titles make the id tie-breaker matter.
        let owner = if i % 3 == 0 { author.id } else { admin.id };
        let d = store
            .create_document(owner, &format!("Doc {}", i % 4), &format!("doc-{i}"))
            .await
            .unwrap()
            .unwrap();
        all.insert(d.id);
        if owner == author.id {
            mine.insert(d.id);
        }
    }
    let shared = store
        .create_document(admin.id, "Shared", "shared")
        .await
        .unwrap()
        .unwrap();
    store
        .set_grant(shared.id, author.id, Some(Grant::Viewer), admin.id)
        .await
        .unwrap();
    all.insert(shared.id);
    mine.insert(shared.id);

    for order in [OrderField::CreatedAt, OrderField::UpdatedAt, OrderField::Title] {
        for descending in [false, true] {
            for (visible_to, expected) in [(None, &all), (Some(author.id), &mine)] {
                let seen = walk(&store, order, descending, visible_to, 4).await;
                let unique: HashSet<_> = seen.iter().copied().collect();
                assert_eq!(
                    unique.len(),
                    seen.len(),
                    "{order:?} desc={descending}: a document came twice"
                );
                assert_eq!(
                    &unique, expected,
                    "{order:?} desc={descending} visible_to={visible_to:?}"
                );
            }
        }
    }
    let drafts = ListQuery {
        status: Some(DocStatus::Published),
        ..query(OrderField::CreatedAt, None)
    };
    assert!(store.list_documents(&drafts).await.unwrap().documents.is_empty());
    let by_owner = ListQuery {
        owner: Some(author.id),
        limit: 100,
        ..query(OrderField::CreatedAt, None)
    };
    assert_eq!(store.list_documents(&by_owner).await.unwrap().documents.len(), 8);
}

fn query(order: OrderField, visible_to: Option<uuid::Uuid>) -> ListQuery {
    ListQuery {
        status: None,
        owner: None,
        visible_to,
        order,
        descending: false,
        after: None,
        limit: 4,
    }
}

async fn walk(
    store: &Store,
    order: OrderField,
    descending: bool,
    visible_to: Option<uuid::Uuid>,
    limit: u32,
) -> Vec<uuid::Uuid> {
    let mut seen = Vec::new();
    let mut after: Option<(CursorKey, uuid::Uuid)> = None;
    loop {
        let q = ListQuery {
            descending,
            after: after.clone(),
            limit,
            ..query(order, visible_to)
        };
        let page = store.list_documents(&q).await.unwrap();
        assert!(page.documents.len() <= limit as usize);
        seen.extend(page.documents.iter().map(|d| d.id));
        match page.documents.last() {
            Some(last) if page.has_next_page => after = Some((order.key_of(last), last.id)),
            _ => return seen,
        }
    }
}

async fn grants_and_api_tokens(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let owner = user(&store, "o@example.com").await;
    let other = user(&store, "x@example.com").await;
    let d = store.create_document(owner.id, "T", "t").await.unwrap().unwrap();
    assert_eq!(
        store.document_by_id(d.id, Some(other.id)).await.unwrap().unwrap().1,
        None
    );
    store
        .set_grant(d.id, other.id, Some(Grant::Viewer), owner.id)
        .await
        .unwrap();
    assert_eq!(
        store.document_by_id(d.id, Some(other.id)).await.unwrap().unwrap().1,
        Some(Grant::Viewer)
    );
    store
        .set_grant(d.id, other.id, Some(Grant::Editor), owner.id)
        .await
        .unwrap();
    assert_eq!(
        store.document_by_slug("t", Some(other.id)).await.unwrap().unwrap().1,
        Some(Grant::Editor)
    );
    store.set_grant(d.id, other.id, None, owner.id).await.unwrap();
    assert_eq!(
        store.document_by_id(d.id, Some(other.id)).await.unwrap().unwrap().1,
        None
    );

    let t = store
        .create_api_token(other.id, "site", TokenScope::Read, "hash-1")
        .await
        .unwrap();
    let (u, scope) = store.api_token_owner("hash-1").await.unwrap().unwrap();
    assert_eq!((u.id, scope), (other.id, TokenScope::Read));
    assert!(store.api_token_owner("hash-2").await.unwrap().is_none());
    let listed = store.list_api_tokens(other.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some(), "use is recorded");
    assert!(
        !store.revoke_api_token(owner.id, t.id).await.unwrap(),
        "only the owner revokes"
    );
    assert!(store.revoke_api_token(other.id, t.id).await.unwrap());
    assert!(
        store.api_token_owner("hash-1").await.unwrap().is_none(),
        "revoked tokens stop working"
    );
}

async fn update_log_snapshots_and_sessions(backend: Backend) {
    use vellum::store::{SessionRow, now};
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let owner = user(&store, "o@example.com").await;
    let d = store.create_document(owner.id, "T", "t").await.unwrap().unwrap();
    // 250 rows in one group commit (more than one multi-row statement).
    let blobs: Vec<Vec<u8>> = (0..250u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let rows: Vec<NewUpdate<'_>> = blobs
        .iter()
        .map(|b| NewUpdate {
            document_id: d.id,
            data: b,
            author_id: Some(owner.id),
        })
        .collect();
    let seqs = store.append_updates(&rows).await.unwrap();
    assert_eq!(seqs, (1..=250).collect::<Vec<i64>>(), "numbered in order from 1");
    let state = store.load_document_state(d.id).await.unwrap();
    assert_eq!((state.updates.len(), state.last_seq()), (250, 250));
    assert!(
        state.updates.iter().zip(&blobs).all(|((_, got), want)| got == want),
        "order and bytes kept"
    );
    // Numbers go on from the last one stored, also for a store just opened on the
    // database (on SQLite it reads the last one back; sqlite_recent_updates_move_into_the_log
    // has more), and a batch numbers each document's rows on their own.
    let other = store.create_document(owner.id, "U", "u").await.unwrap().unwrap();
    let fresh = NewUpdate {
        document_id: d.id,
        data: b"new",
        author_id: None,
    };
    let elsewhere = NewUpdate {
        document_id: other.id,
        data: b"other",
        author_id: None,
    };
    assert_eq!(
        store.append_updates(&[fresh, elsewhere, fresh]).await.unwrap(),
        vec![251, 1, 252]
    );
    let reopened = db.store().await;
    assert_eq!(
        reopened.append_updates(&[elsewhere, fresh]).await.unwrap(),
        vec![2, 253]
    );
    let state = reopened.load_document_state(d.id).await.unwrap();
    assert_eq!((state.updates.len(), state.last_seq()), (253, 253));
    assert_eq!(
        state.updates[250..].iter().map(|u| &u.1[..]).collect::<Vec<_>>(),
        vec![b"new"; 3]
    );
    reopened.close().await;
    store.write_snapshot(d.id, b"snap-200", 200).await.unwrap();
    let state = store.load_document_state(d.id).await.unwrap();
    assert_eq!(state.snapshot, Some((b"snap-200".to_vec(), 200)));
    assert_eq!(
        (state.updates.len(), state.last_seq()),
        (53, 253),
        "covered updates deleted"
    );
    store.write_snapshot(d.id, b"older", 100).await.unwrap();
    let state = store.load_document_state(d.id).await.unwrap();
    assert_eq!(state.snapshot.unwrap().1, 200, "a snapshot never moves backwards");
    assert_eq!(store.update_log_stats(d.id).await.unwrap(), (53, 200 + 3 * 3));
    // What a room that holds an unbroken run up to some update lacks.
    let after = store.load_document_state_after(d.id, 250).await.unwrap();
    assert_eq!(
        (after.snapshot.is_none(), after.updates.len(), after.last_seq()),
        (true, 3, 253)
    );
    let after = store.load_document_state_after(d.id, 150).await.unwrap();
    assert_eq!(
        after.snapshot.map(|s| s.1),
        Some(200),
        "the snapshot, when it covers more"
    );
    assert_eq!(after.updates.first().map(|u| u.0), Some(201));
    if backend == Backend::Postgres {
        // The database guards the range whichever node writes: no snapshot covers an
        // update not yet given out.
        assert!(store.write_snapshot(d.id, b"ahead", 254).await.is_err());
        assert_eq!(store.last_seqs(&[d.id, other.id]).await.unwrap().len(), 2);
    }

    let row = |node: &str| SessionRow {
        id: uuid::Uuid::now_v7(),
        node_id: node.into(),
        user_id: Some(owner.id),
        document_id: d.id,
        connected_at: now(),
        heartbeat_at: now() - chrono::Duration::minutes(10),
    };
    let (mine, dead, live) = (
        row("me"),
        row("dead"),
        SessionRow {
            heartbeat_at: now(),
            ..row("live")
        },
    );
    for r in [&mine, &dead, &live] {
        store.insert_session(r).await.unwrap();
    }
    assert_eq!(store.sessions_of(d.id).await.unwrap().len(), 3);
    let cleared = store
        .clear_stale_sessions("me", now() - chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(cleared, 2, "this node's old rows and a dead node's rows");
    let left = store.sessions_of(d.id).await.unwrap();
    assert_eq!(left.iter().map(|s| s.node_id.as_str()).collect::<Vec<_>>(), ["live"]);
    store.heartbeat_sessions("live").await.unwrap();
    store.delete_session(live.id).await.unwrap();
    assert!(store.sessions_of(d.id).await.unwrap().is_empty());
    // At shutdown a node clears its own rows, however fresh, and no one else's.
    let (fresh, other) = (
        SessionRow {
            heartbeat_at: now(),
            ..row("me")
        },
        row("other"),
    );
    store.write_sessions(&[fresh, other], &[]).await.unwrap();
    assert_eq!(store.clear_node_sessions("me").await.unwrap(), 1);
    let left = store.sessions_of(d.id).await.unwrap();
    assert_eq!(left.iter().map(|s| s.node_id.as_str()).collect::<Vec<_>>(), ["other"]);
    // Connects and disconnects in one batch, larger than one statement's rows on SQLite;
    // every field comes back (a connection without a user has a null).
    let many: Vec<SessionRow> = (0..150)
        .map(|_| SessionRow {
            user_id: None,
            ..row("many")
        })
        .collect();
    store.write_sessions(&many, &[left[0].id]).await.unwrap();
    let fields = |rows: &[SessionRow]| {
        let mut f: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.id,
                    r.node_id.clone(),
                    r.user_id,
                    r.document_id,
                    r.connected_at,
                    r.heartbeat_at,
                )
            })
            .collect();
        f.sort_by_key(|r| r.0);
        f
    };
    assert_eq!(fields(&store.sessions_of(d.id).await.unwrap()), fields(&many));
}

/// `database.max_connections = 0` picks the backend's pool size: few for SQLite, where
/// one connection writes at a time and each holds memory in this process. A pool that
/// small still serves many concurrent callers, in turn.
async fn automatic_pool_size(backend: Backend) {
    let mut db = TestDb::new(backend).await;
    db.config.database.max_connections = 0;
    let store = db.store().await;
    let expected = match backend {
        Backend::Sqlite => 4,
        Backend::Postgres => 10,
    };
    assert_eq!(store.pool_size(), expected);
    let callers = (0..32).map(|_| store.ping());
    for result in futures::future::join_all(callers).await {
        result.unwrap();
    }
    store.close().await;

    db.config.database.max_connections = 3;
    assert_eq!(db.store().await.pool_size(), 3);
}

/// A connection taken for group commits has the larger page cache
/// (`database.sqlite_commit_cache_kib`) until it is released, and goes back to the pool
/// with the usual one; one dropped without being released is closed, never pooled with
/// the larger cache.
#[tokio::test]
async fn sqlite_commit_connections_give_their_cache_back() {
    let mut db = TestDb::new(Backend::Sqlite).await;
    db.config.database.max_connections = 2;
    db.config.database.sqlite_cache_kib = 256;
    db.config.database.sqlite_commit_cache_kib = 2048;
    let store = db.store().await;
    let usual = async || {
        let mut a = store.hold_connection().await.unwrap();
        let mut b = store.hold_connection().await.unwrap();
        assert_eq!(store.open_connections(), 2);
        for c in [&mut a, &mut b] {
            assert_eq!(store.page_cache_kib(c).await.unwrap(), Some(256));
        }
    };
    for released in [true, false] {
        let mut commits = store.hold_commit_connection().await.unwrap();
        assert_eq!(store.page_cache_kib(&mut commits).await.unwrap(), Some(2048));
        if released {
            store.release(commits).await;
        } else {
            drop(commits);
            // Closed in the background: the pool opens another when asked.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            while store.open_connections() == 2 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the enlarged connection was pooled"
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        usual().await;
    }
}

/// On SQLite group commits of three or more documents append to
/// `document_updates_recent`, unindexed, and the writer moves the rows into
/// `document_updates` in steps (migration 0005); smaller ones go straight there. Reads
/// see every row once wherever it is, a snapshot's covered rows are not moved, rows a
/// previous run left (moved or not) are found by the next, and a sequence number is
/// still used once.
#[tokio::test]
async fn sqlite_recent_updates_move_into_the_log() {
    use vellum::store::{FOLD_AT_ROWS, Fold, MOVE_ROWS};
    let db = TestDb::new(Backend::Sqlite).await;
    let mut store = db.store().await;
    let owner = user(&store, "o@example.com").await;
    let mut docs = Vec::new();
    for name in ["a", "b", "c"] {
        docs.push(store.create_document(owner.id, name, name).await.unwrap().unwrap().id);
    }
    docs.sort(); // as SQLite orders them: a move's ranges follow this order
    let (a, b, c) = (docs[0], docs[1], docs[2]);
    let blob = |doc: uuid::Uuid, seq: i64| format!("{doc}-{seq}").into_bytes();
    let blobs: Vec<(uuid::Uuid, i64, Vec<u8>)> = (1..=FOLD_AT_ROWS as i64)
        .flat_map(|seq| docs.iter().map(move |d| (*d, seq)))
        .map(|(d, seq)| (d, seq, blob(d, seq)))
        .collect();
    let rows = |doc: uuid::Uuid, seqs: std::ops::RangeInclusive<i64>| -> Vec<NewUpdate<'_>> {
        blobs
            .iter()
            .filter(|(d, s, _)| *d == doc && seqs.contains(s))
            .map(|(d, _, data)| NewUpdate {
                document_id: *d,
                data,
                author_id: None,
            })
            .collect()
    };
    let check = async |store: &Store, doc, snapshot: i64, last: i64| {
        let state = store.load_document_state(doc).await.unwrap();
        assert_eq!(state.snapshot.map(|s| s.1).unwrap_or(0), snapshot);
        let seqs: Vec<i64> = state.updates.iter().map(|u| u.0).collect();
        assert_eq!(seqs, (snapshot + 1..=last).collect::<Vec<_>>(), "in order, once each");
        assert!(state.updates.iter().all(|(s, data)| *data == blob(doc, *s)));
        let bytes = seqs.iter().map(|s| blob(doc, *s).len() as i64).sum();
        assert_eq!(store.update_log_stats(doc).await.unwrap(), (last - snapshot, bytes));
    };

    // Three documents in one batch: recent rows. Then one document alone: straight
    // into the log, beside its recent rows.
    let mut batch = rows(a, 1..=10);
    batch.extend(rows(b, 1..=5));
    batch.extend(rows(c, 1..=1));
    store.append_updates(&batch).await.unwrap();
    assert_eq!(store.recent_update_rows().await.unwrap(), 16);
    store.append_updates(&rows(a, 11..=12)).await.unwrap();
    assert_eq!(store.recent_update_rows().await.unwrap(), 16, "one document: direct");
    let not_due = store.fold_update_log_on(&mut None, Fold::IfDue).await.unwrap();
    assert_eq!((not_due.deleted, not_due.more), (0, true), "not due");
    check(&store, a, 0, 12).await;
    store.write_snapshot(a, b"snap-6", 6).await.unwrap();
    check(&store, a, 6, 12).await;

    assert_eq!(store.fold_update_log().await.unwrap(), 16);
    assert_eq!(store.recent_update_rows().await.unwrap(), 0);
    check(&store, a, 6, 12).await;
    check(&store, b, 0, 5).await;
    check(&store, c, 0, 1).await;

    // Rows left by a run that stopped before moving them.
    let mut batch = rows(a, 13..=14);
    batch.extend(rows(b, 6..=6));
    batch.extend(rows(c, 2..=2));
    store.append_updates(&batch).await.unwrap();
    store.close().await;
    store = db.store().await;
    check(&store, a, 6, 14).await;
    assert_eq!(
        store.append_updates(&rows(a, 15..=15)).await.unwrap(),
        vec![15],
        "numbered after the recent rows a previous run left"
    );
    assert_eq!(store.fold_update_log().await.unwrap(), 4);
    check(&store, a, 6, 15).await;

    // A move begins once there are enough, and goes a step at a time (ranges of about
    // MOVE_ROWS rows copied, then all deleted from the recent rows): meanwhile every
    // update is read once, wherever it is.
    let last = [15 + 2 * MOVE_ROWS as i64 + 7, 6 + 3, FOLD_AT_ROWS as i64];
    let mut batch = rows(a, 16..=last[0]);
    batch.extend(rows(b, 7..=last[1]));
    batch.extend(rows(c, 3..=last[2]));
    store.append_updates(&batch).await.unwrap();
    let total = batch.len() as u64;
    assert!(total >= FOLD_AT_ROWS);
    let mut steps = 0;
    loop {
        let folded = store.fold_update_log_on(&mut None, Fold::IfDue).await.unwrap();
        steps += 1;
        check(&store, a, 6, last[0]).await;
        check(&store, b, 0, last[1]).await;
        check(&store, c, 0, last[2]).await;
        if folded.deleted > 0 {
            assert_eq!((folded.deleted, folded.more), (total, false));
            break;
        }
        assert!(folded.more && steps < 20, "the move never ended");
        if steps == 2 {
            // A stop midway: the next run reads both tables right, and its move skips
            // the copied rows.
            store.close().await;
            store = db.store().await;
        }
    }
    // a: 2 × MOVE_ROWS + 7 rows, ranges of MOVE_ROWS: 3 ranges, the last shared with b;
    // c: its rows split by MOVE_ROWS. Two steps, then after the stop a move from the
    // start: every range again (the copied ones skipped), and the deletion.
    let c_ranges = ((last[2] - 2) as u64).div_ceil(MOVE_ROWS) as i64;
    assert_eq!(steps, 2 + 3 + c_ranges + 1);
    assert_eq!(store.recent_update_rows().await.unwrap(), 0);
}

/// A server locks its SQLite database until it closes it (`Store::lock_for_serving`);
/// on PostgreSQL, which several nodes share, the lock is nothing.
async fn one_server_per_sqlite_database(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (first, second) = (db.store().await, db.store().await);
    first.lock_for_serving().unwrap();
    let refused = second.lock_for_serving();
    match backend {
        Backend::Sqlite => {
            let e = refused.expect_err("a second server on one SQLite database");
            assert!(e.to_string().contains("another Vellum server"), "{e:#}");
        }
        Backend::Postgres => refused.unwrap(),
    }
    first.close().await;
    second.lock_for_serving().unwrap();
}

/// After a quiet spell the server empties SQLite's page caches (`memory::release_caches`,
/// run by the trimmer): the pages a read left in them are freed, and the next read
/// takes them from the file again.
#[tokio::test]
async fn sqlite_page_caches_can_be_emptied() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let owner = user(&store, "o@example.com").await;
    let d = store.create_document(owner.id, "T", "t").await.unwrap().unwrap();
    let state: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    store.write_snapshot(d.id, &state, 1).await.unwrap();
    let read = || async { store.load_document_state(d.id).await.unwrap().snapshot.unwrap().0 };
    assert_eq!(read().await, state);
    let freed = vellum::memory::release_caches();
    assert!(
        freed >= state.len(),
        "freed {freed} bytes, the snapshot alone is {}",
        state.len()
    );
    assert_eq!(read().await, state, "read back from the file");
}

/// PostgreSQL compresses large values with lz4 where the server has it (migration 0003):
/// a fresh client's open reads the whole snapshot, and lz4 reads back faster than pglz.
#[tokio::test]
async fn postgres_compresses_snapshots_with_lz4() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let owner = user(&store, "o@example.com").await;
    let d = store.create_document(owner.id, "T", "t").await.unwrap().unwrap();
    // Compressible, and over the 2 KB at which PostgreSQL starts compressing.
    let state: Vec<u8> = (0..20_000u32).flat_map(|i| format!("{i} ").into_bytes()).collect();
    let update = NewUpdate {
        document_id: d.id,
        data: b"update",
        author_id: None,
    };
    store.append_updates(&[update]).await.unwrap();
    store.write_snapshot(d.id, &state, 1).await.unwrap();
    let pg = sqlx::PgPool::connect(db.config.database.url.expose()).await.unwrap();
    let lz4: bool =
        sqlx::query_scalar("select 'lz4' = any(enumvals) from pg_settings where name = 'default_toast_compression'")
            .fetch_one(&pg)
            .await
            .unwrap();
    let method: Option<String> =
        sqlx::query_scalar("select pg_column_compression(state) from document_snapshots where document_id = $1")
            .bind(d.id)
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(method.as_deref(), Some(if lz4 { "lz4" } else { "pglz" }));
    let loaded = store.load_document_state(d.id).await.unwrap();
    assert_eq!(loaded.snapshot.unwrap().0, state);
}

/// PostgreSQL's update log has no foreign key (migration 0004): its check locked the
/// document's row on every inserted update. The log still takes and returns updates.
#[tokio::test]
async fn postgres_update_log_has_no_foreign_key() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let pg = sqlx::PgPool::connect(db.config.database.url.expose()).await.unwrap();
    let checks: Vec<String> = sqlx::query_scalar(
        "select conname::text from pg_constraint where conrelid = 'document_updates'::regclass and contype = 'f'",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    assert_eq!(checks, Vec::<String>::new());
    let kept: i64 = sqlx::query_scalar(
        "select count(*) from pg_constraint where conrelid = 'document_snapshots'::regclass and contype = 'f'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(kept, 1, "snapshots keep theirs");
    let owner = user(&store, "o@example.com").await;
    let d = store.create_document(owner.id, "T", "t").await.unwrap().unwrap();
    let rows = [(); 2].map(|()| NewUpdate {
        document_id: d.id,
        data: b"update",
        author_id: Some(owner.id),
    });
    store.append_updates(&rows).await.unwrap();
    let loaded = store.load_document_state(d.id).await.unwrap();
    assert_eq!(loaded.updates, vec![(1, b"update".to_vec()), (2, b"update".to_vec())]);
}

/// Several nodes append to one document's log at once (each a store of its own on the
/// same database, as a node is): the database gives out the sequence numbers, so every
/// update gets its own, with no gap, whatever the interleaving; batches touching the
/// same documents in different orders do not deadlock.
#[tokio::test]
async fn postgres_nodes_share_sequence_numbers() {
    let db = TestDb::new(Backend::Postgres).await;
    let nodes = [db.store().await, db.store().await, db.store().await];
    let owner = user(&nodes[0], "o@example.com").await;
    let mut docs = Vec::new();
    for name in ["a", "b", "c"] {
        docs.push(
            nodes[0]
                .create_document(owner.id, name, name)
                .await
                .unwrap()
                .unwrap()
                .id,
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (n, store) in nodes.iter().enumerate() {
        for t in 0..4 {
            let (store, docs) = (store.clone(), docs.clone());
            tasks.spawn(async move {
                let mut got = Vec::new();
                for round in 0..25 {
                    // Each batch names the documents in its own order, some twice.
                    let order: Vec<uuid::Uuid> = (0..4).map(|i| docs[(n + t + round + i) % docs.len()]).collect();
                    let data: Vec<Vec<u8>> = order
                        .iter()
                        .map(|d| format!("{n}-{t}-{round}-{d}").into_bytes())
                        .collect();
                    let rows: Vec<NewUpdate<'_>> = order
                        .iter()
                        .zip(&data)
                        .map(|(d, x)| NewUpdate {
                            document_id: *d,
                            data: x,
                            author_id: None,
                        })
                        .collect();
                    let seqs = store.append_updates(&rows).await.expect("no conflict, no deadlock");
                    got.extend(order.into_iter().zip(seqs).zip(data));
                }
                got
            });
        }
    }
    let mut given: std::collections::HashMap<uuid::Uuid, Vec<(i64, Vec<u8>)>> = Default::default();
    while let Some(done) = tasks.join_next().await {
        for ((doc, seq), data) in done.unwrap() {
            given.entry(doc).or_default().push((seq, data));
        }
    }
    for doc in &docs {
        let mine = given.get_mut(doc).unwrap();
        mine.sort();
        let seqs: Vec<i64> = mine.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=mine.len() as i64).collect::<Vec<_>>(), "each once, no gap");
        let stored = nodes[2].load_document_state(*doc).await.unwrap();
        assert_eq!(&stored.updates, mine, "stored under the number its node was told");
    }
    assert_eq!(given.values().map(Vec::len).sum::<usize>(), 3 * 4 * 25 * 4);
}

/// The pool hands out a PostgreSQL connection without pinging it first unless it has
/// been idle for `PG_PING_AFTER_IDLE` (change 31): one the server dropped meanwhile is
/// caught by that ping and replaced, so the caller never sees it. Here the server ends
/// every session of the pool while it is idle.
#[tokio::test]
async fn postgres_replaces_connections_the_server_dropped_while_idle() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let owner = user(&store, "o@example.com").await;
    let url = db.config.database.url.expose();
    let name = url.rsplit('/').next().unwrap().to_string();
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(
        !ended.is_empty() && ended.iter().all(|e| *e),
        "the pool's sessions were ended: {ended:?}"
    );
    // Idle time is what this is about, so the test waits it out.
    tokio::time::sleep(vellum::store::PG_PING_AFTER_IDLE + std::time::Duration::from_millis(200)).await;
    let found = store.user_by_id(owner.id).await.expect("a fresh connection answers");
    assert_eq!(found.map(|u| u.email), Some("o@example.com".to_string()));
}

/// A PostgreSQL connection the pool opens once the store is migrated has the statements
/// of a connect to a document (its user, the document with the user's grant, the room's
/// load) prepared before its first use (change 45): every connection of the pool here,
/// the one the migrations ran on included.
#[tokio::test]
async fn postgres_connections_are_warmed_up() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let owner = user(&store, "o@example.com").await;
    let mut held = Vec::new();
    for _ in 0..store.pool_size() {
        held.push(store.hold_connection().await.unwrap());
    }
    assert_eq!(store.open_connections(), store.pool_size());
    for conn in &mut held {
        let prepared = store.prepared_statements(conn).await.unwrap();
        for part in [
            "from users where id = $1",
            "left join document_access a",
            "from document_snapshots",
        ] {
            assert!(
                prepared.iter().any(|s| s.contains(part)),
                "no statement with {part:?} among {prepared:#?}"
            );
        }
    }
    drop(held);
    // The statements still answer, with what the warm-up's nil ids did not match.
    assert_eq!(store.user_by_id(owner.id).await.unwrap().map(|u| u.id), Some(owner.id));
    let d = store.create_document(owner.id, "T", "t").await.unwrap().unwrap();
    assert_eq!(
        store
            .document_by_id(d.id, Some(owner.id))
            .await
            .unwrap()
            .map(|(doc, _)| doc.id),
        Some(d.id)
    );
}

both_backends!(
    one_server_per_sqlite_database,
    automatic_pool_size,
    update_log_snapshots_and_sessions,
    first_user_is_admin_and_emails_are_unique,
    migrations_are_idempotent,
    slugs_are_unique_among_live_documents,
    stale_lock_version_is_refused,
    concurrent_writers_one_wins,
    listing_walks_every_visible_document_once,
    grants_and_api_tokens,
);
