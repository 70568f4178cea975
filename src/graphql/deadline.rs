//! A deadline for queries (`graphql.query_timeout_ms`), over HTTP and WebSocket alike.
//! A query only reads, so stopping it part way leaves nothing half done: past the
//! deadline its resolvers are dropped and the answer is a `TIMEOUT` error, retryable.
//! Mutations are not cut off, since one stopped half way could leave its effect without
//! its answer; their time is bounded by what they wait on (the database's busy and pool
//! timeouts, plugin deadlines) and the size limits that run before any resolver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{ErrorExtensionValues, Response, ServerError, ServerResult, Variables};

/// The extension (one per schema). Registered before `ExpandedFields`, which parses the
/// query, so it sees the parsed document.
pub struct QueryDeadline {
    pub limit: Duration,
}

impl ExtensionFactory for QueryDeadline {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequest {
            limit: self.limit,
            operations: Mutex::new(Vec::new()),
        })
    }
}

struct PerRequest {
    limit: Duration,
    /// The document's operations: (name, kind), noted while parsing.
    operations: Mutex<Vec<(Option<String>, OperationType)>>,
}

impl PerRequest {
    /// The kind of the operation `name` selects (as async-graphql selects it).
    fn kind(&self, name: Option<&str>) -> Option<OperationType> {
        let ops = self.operations.lock().expect("not poisoned");
        match name {
            Some(name) => ops.iter().find(|(n, _)| n.as_deref() == Some(name)).map(|(_, k)| *k),
            None if ops.len() == 1 => Some(ops[0].1),
            None => None,
        }
    }
}

#[async_trait::async_trait]
impl Extension for PerRequest {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let ops = match &doc.operations {
            DocumentOperations::Single(op) => vec![(None, op.node.ty)],
            DocumentOperations::Multiple(map) => map
                .iter()
                .map(|(name, op)| (Some(name.to_string()), op.node.ty))
                .collect(),
        };
        *self.operations.lock().expect("not poisoned") = ops;
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if self.kind(operation_name) != Some(OperationType::Query) {
            return next.run(ctx, operation_name).await;
        }
        match tokio::time::timeout(self.limit, next.run(ctx, operation_name)).await {
            Ok(response) => response,
            Err(_) => Response::from_errors(vec![timeout(self.limit)]),
        }
    }
}

fn timeout(limit: Duration) -> ServerError {
    let mut e = ServerError::new(
        format!(
            "the query took longer than {} ms (graphql.query_timeout_ms) and was stopped; \
             ask for less, or try again",
            limit.as_millis()
        ),
        None,
    );
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", "TIMEOUT");
    ext.set("retryable", true);
    e.extensions = Some(ext);
    e
}
