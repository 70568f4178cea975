//! Subscriptions over `graphql-transport-ws` at `/graphql`, fed by the bus so that a
//! change made on any node reaches subscribers on every node.

use std::time::Duration;

use async_graphql::{Context, ID, Result, Subscription as GqlSubscription};
use futures::{Stream, StreamExt, stream};
use tokio::sync::broadcast::error::RecvError;

use super::schema::parse_id;
use super::types::Presence;
use super::{caller, gql, state};
use crate::bus::BusEvent;
use crate::documents;

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
        Ok(stream::once(async move { current })
            .chain(changes)
            .map(|list| list.into_iter().map(Presence::from).collect()))
    }
}
