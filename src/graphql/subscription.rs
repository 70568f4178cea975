//! Subscriptions over `graphql-transport-ws` at `/graphql`, fed by the bus so that a
//! change made on any node reaches subscribers on every node.

use std::time::Duration;

use async_graphql::{Context, ID, Result, Subscription as GqlSubscription};
use futures::{Stream, StreamExt, stream};
use tokio::sync::broadcast::error::RecvError;

use super::schema::parse_id;
use super::types::{Document, DocumentChangeEvent, DocumentChangeKind, Presence, Version};
use super::{SocketCredential, caller, gql, state};
use crate::auth::Principal;
use crate::bus::{BusEvent, DocumentChange};
use crate::documents;
use crate::error::Error;
use crate::state::AppState;

/// Presence events closer together than this are sent as one.
const COALESCE: Duration = Duration::from_millis(50);

pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// Who is in a document: the current list at once, then again whenever someone
    /// joins, leaves or moves their cursor. Needs read access to the document.
    async fn presence_changed(&self, ctx: &Context<'_>, document_id: ID) -> Result<impl Stream<Item = Vec<Presence>>> {
        let (st, who) = (state(ctx).clone(), caller(ctx));
        let id = parse_id(&document_id, "documentId")?;
        documents::get(&st.store, who, id).await.map_err(gql)?;
        let rx = st.collab.bus().subscribe(id);
        let current = st.collab.presence(id).await;
        let changes = stream::unfold((rx, st), move |(mut rx, st)| async move {
            loop {
                match rx.recv().await {
                    Ok(m) if matches!(m.event, BusEvent::PresenceChanged) => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return None,
                }
            }
            // Coalesce a burst (a cursor moving, many people joining) into one event.
            tokio::time::sleep(COALESCE).await;
            while rx.try_recv().is_ok() {}
            let now = st.collab.presence(id).await;
            Some((now, (rx, st)))
        });
        let events = stream::once(async move { current })
            .chain(changes)
            .map(|list| list.into_iter().map(Presence::from).collect());
        Ok(while_readable(ctx, id, events))
    }

    /// Changes to a document: metadata, publication and deletion at once, content
    /// edits (from any editor, REST or GraphQL) coalesced to at most
    /// `content.content_events_per_sec` per second. Needs read access to the document;
    /// the stream ends after DELETED or when access is lost.
    async fn document_changed(&self, ctx: &Context<'_>, id: ID) -> Result<impl Stream<Item = DocumentChangeEvent>> {
        let (st, who) = (state(ctx).clone(), caller(ctx).clone());
        let id = parse_id(&id, "id")?;
        documents::get(&st.store, &who, id).await.map_err(gql)?;
        let rx = st.collab.bus().subscribe(id);
        let interval = Duration::from_secs(1) / st.config.content.content_events_per_sec;
        let state = Watch {
            rx,
            st,
            who,
            id,
            interval,
            content_due: None,
            last_content: None,
            queued: None,
            done: false,
        };
        let events = stream::unfold(state, |mut w| async move {
            let event = w.next().await?;
            Some((event, w))
        });
        Ok(while_readable(ctx, id, events))
    }

    /// Versions saved from now on (by hand, by restores and by publishing). Needs read
    /// access to the document.
    async fn version_created(&self, ctx: &Context<'_>, document_id: ID) -> Result<impl Stream<Item = Version>> {
        let (st, who) = (state(ctx).clone(), caller(ctx).clone());
        let id = parse_id(&document_id, "documentId")?;
        documents::get(&st.store, &who, id).await.map_err(gql)?;
        let rx = st.collab.bus().subscribe(id);
        let events = stream::unfold((rx, st, who), move |(mut rx, st, who)| async move {
            loop {
                let version_id = match rx.recv().await {
                    Ok(m) => match m.event {
                        BusEvent::VersionCreated { version_id } => version_id,
                        BusEvent::DocumentChanged {
                            change: DocumentChange::Deleted,
                        } => return None,
                        _ => continue,
                    },
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                };
                match crate::versions::get(&st, &who, version_id).await {
                    Ok(v) => return Some((Version(v), (rx, st, who))),
                    Err(_) => return None, // access lost
                }
            }
        });
        Ok(while_readable(ctx, id, events))
    }
}

/// `events`, ended once the subscriber may no longer read document `id`: checked
/// again, from the socket's credential, whenever any node may have taken access away
/// (`auth::access`), so a removed share, a deleted document or a revoked token stops a
/// subscription within `auth.access_check_ms` and a check.
fn while_readable<S>(ctx: &Context<'_>, id: uuid::Uuid, events: S) -> impl Stream<Item = S::Item> + use<S>
where
    S: Stream + Send + 'static,
{
    let st = state(ctx).clone();
    let who = caller(ctx).clone();
    let credential = ctx.data_opt::<SocketCredential>().and_then(|c| c.0.clone());
    let mut changes = st.access.subscribe();
    let retry = Duration::from_millis(st.config.auth.access_check_ms.max(100));
    let lost = async move {
        let mut owed = false;
        loop {
            if !owed && changes.changed().await.is_err() {
                return std::future::pending().await;
            }
            let now = match &credential {
                Some(c) => c.principal(&st.store).await,
                None => Ok(who.clone()),
            };
            let readable = match now {
                Ok(now) => documents::get(&st.store, &now, id).await.map(drop),
                Err(e) => Err(e),
            };
            owed = match readable {
                Ok(()) => false,
                Err(Error::NotFound(_) | Error::Forbidden(_) | Error::Unauthenticated) => return,
                // The database did not answer: ask again shortly.
                Err(_) => {
                    tokio::time::sleep(retry).await;
                    true
                }
            };
        }
    };
    events.take_until(Box::pin(lost))
}

/// One `documentChanged` subscription.
struct Watch {
    rx: tokio::sync::broadcast::Receiver<crate::bus::BusMessage>,
    st: AppState,
    who: Principal,
    id: uuid::Uuid,
    interval: Duration,
    /// A content event is owed at this instant.
    content_due: Option<tokio::time::Instant>,
    last_content: Option<tokio::time::Instant>,
    /// An event to send right after the content event that had to go first.
    queued: Option<DocumentChangeKind>,
    done: bool,
}

impl Watch {
    async fn next(&mut self) -> Option<DocumentChangeEvent> {
        if self.done {
            return None;
        }
        if let Some(kind) = self.queued.take() {
            return self.event(kind).await;
        }
        loop {
            let due = self.content_due;
            let msg = tokio::select! {
                msg = self.rx.recv() => msg,
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    self.content_due = None;
                    self.last_content = Some(tokio::time::Instant::now());
                    return self.event(DocumentChangeKind::Content).await;
                }
            };
            let kind = match msg {
                Ok(m) => match m.event {
                    BusEvent::Update { .. } => {
                        if self.content_due.is_none() {
                            let now = tokio::time::Instant::now();
                            let earliest = self.last_content.map_or(now, |t| t + self.interval);
                            self.content_due = Some(earliest.max(now));
                        }
                        continue;
                    }
                    BusEvent::DocumentChanged { change } => match change {
                        DocumentChange::Metadata => DocumentChangeKind::Metadata,
                        DocumentChange::Published => DocumentChangeKind::Published,
                        DocumentChange::Unpublished => DocumentChangeKind::Unpublished,
                        DocumentChange::Deleted => DocumentChangeKind::Deleted,
                    },
                    _ => continue,
                },
                // Missed some: something changed; say so once.
                Err(RecvError::Lagged(_)) => DocumentChangeKind::Metadata,
                Err(RecvError::Closed) => return None,
            };
            // Edits made before this change are reported before it.
            if self.content_due.take().is_some() {
                self.queued = Some(kind);
                self.last_content = Some(tokio::time::Instant::now());
                return self.event(DocumentChangeKind::Content).await;
            }
            return self.event(kind).await;
        }
    }

    /// The event with the document as it is now; ends the stream after a deletion or
    /// when the subscriber can no longer read the document.
    async fn event(&mut self, kind: DocumentChangeKind) -> Option<DocumentChangeEvent> {
        if kind == DocumentChangeKind::Deleted {
            self.done = true;
            let doc = self.st.store.deleted_document(self.id).await.ok().flatten()?;
            return Some(DocumentChangeEvent {
                kind,
                document: Document::from(doc),
            });
        }
        match documents::get(&self.st.store, &self.who, self.id).await {
            Ok(v) => Some(DocumentChangeEvent {
                kind,
                document: Document::from(v.doc),
            }),
            Err(_) => None,
        }
    }
}
