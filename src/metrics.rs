//! Prometheus metrics at `/metrics`, through the `metrics` crate and its Prometheus
//! exporter. Counters and histograms are recorded where things happen (these functions);
//! gauges of current state (connections, rooms) are read when `/metrics` is scraped.
//! The recorder is process-wide: several servers in one process (tests) share it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process); `None` if another recorder was installed.
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            let sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("vellum_group_commit_updates".into()), &sizes))
                .map_err(|e| tracing::warn!(error = %e, "metrics: bad buckets"))
                .ok()?;
            let handle = built
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics: no recorder installed"))
                .ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("vellum_connections", "Open document sockets on this node");
    describe_gauge!("vellum_rooms_loaded", "Documents with a live room on this node");
    describe_counter!(
        "vellum_updates_accepted_total",
        "Client and server edits stored (durable) by this node"
    );
    describe_histogram!("vellum_group_commit_updates", "Updates per group commit");
    describe_histogram!(
        "vellum_group_commit_seconds",
        "Time a group commit took in the database"
    );
    describe_counter!("vellum_group_commit_failures_total", "Group commits that failed");
    describe_counter!(
        "vellum_damaged_document_refusals_total",
        "Documents that could not be opened because their stored state is damaged (see `vellum doctor`)"
    );
    describe_counter!(
        "vellum_plugin_after_publish_total",
        "After-publish plugin calls by plugin and outcome (ok, retried, gave-up)"
    );
    describe_counter!(
        "vellum_plugin_after_publish_dropped_total",
        "Publishes whose after-publish plugin calls were skipped: the queue was full"
    );
    describe_counter!("vellum_snapshot_writes_total", "Snapshots written (compactions)");
    describe_counter!(
        "vellum_bus_published_total",
        "Messages this node published to the Redis bus"
    );
    describe_counter!(
        "vellum_bus_received_total",
        "Messages from other nodes received from the Redis bus"
    );
    describe_counter!(
        "vellum_bus_dropped_total",
        "Bus messages not sent or not delivered, by reason"
    );
    describe_histogram!(
        "vellum_bus_lag_seconds",
        "From another node's publish to this node's receipt"
    );
    describe_gauge!(
        "vellum_bus_connected",
        "1 while the Redis bus is reachable (always 1 on one node)"
    );
    describe_counter!(
        "vellum_catchups_total",
        "Rooms that caught up from the database, by cause"
    );
    describe_counter!(
        "vellum_graphql_operations_total",
        "GraphQL operations over HTTP, by type"
    );
    describe_counter!(
        "vellum_graphql_errors_total",
        "GraphQL errors returned, by extensions.code"
    );
    describe_counter!("vellum_login_throttled_total", "Logins refused by the login throttle");
}

/// Starts recording (call once at start; later calls do nothing).
pub fn init() {
    let _ = handle();
}

/// The Prometheus text exposition of every metric, after `gauges` sets the current ones.
pub fn render(gauges: impl FnOnce()) -> String {
    match handle() {
        Some(h) => {
            gauges();
            h.render()
        }
        None => String::new(),
    }
}

pub fn set_gauges(connections: usize, rooms: usize, bus_connected: bool) {
    gauge!("vellum_connections").set(connections as f64);
    gauge!("vellum_rooms_loaded").set(rooms as f64);
    gauge!("vellum_bus_connected").set(if bus_connected { 1.0 } else { 0.0 });
}

pub fn update_accepted() {
    counter!("vellum_updates_accepted_total").increment(1);
}

pub fn group_commit(updates: usize, took: Duration, ok: bool) {
    histogram!("vellum_group_commit_updates").record(updates as f64);
    histogram!("vellum_group_commit_seconds").record(took.as_secs_f64());
    if !ok {
        counter!("vellum_group_commit_failures_total").increment(1);
    }
}

/// A join refused because the document's stored state is damaged (`collab::Damaged`).
pub fn damaged_document_refused() {
    counter!("vellum_damaged_document_refusals_total").increment(1);
}

pub fn snapshot_written() {
    counter!("vellum_snapshot_writes_total").increment(1);
}

pub fn bus_published(n: usize) {
    counter!("vellum_bus_published_total").increment(n as u64);
}

pub fn bus_received(lag: Duration) {
    counter!("vellum_bus_received_total").increment(1);
    histogram!("vellum_bus_lag_seconds").record(lag.as_secs_f64());
}

pub fn bus_dropped(reason: &'static str) {
    counter!("vellum_bus_dropped_total", "reason" => reason).increment(1);
}

pub fn catch_up(cause: &'static str) {
    counter!("vellum_catchups_total", "cause" => cause).increment(1);
}

pub fn graphql_operation(kind: &'static str) {
    counter!("vellum_graphql_operations_total", "type" => kind).increment(1);
}

pub fn graphql_error(code: &str) {
    counter!("vellum_graphql_errors_total", "code" => code.to_string()).increment(1);
}

pub fn after_publish(plugin: &str, outcome: &'static str) {
    counter!("vellum_plugin_after_publish_total", "plugin" => plugin.to_string(), "outcome" => outcome).increment(1);
}

pub fn after_publish_dropped() {
    counter!("vellum_plugin_after_publish_dropped_total").increment(1);
}

pub fn login_throttled() {
    counter!("vellum_login_throttled_total").increment(1);
}

/// The operation type of a GraphQL document, from its first keyword (enough for a
/// metric: `query` for the shorthand `{ … }` too).
pub fn operation_kind(query: &str) -> &'static str {
    let mut rest = query.trim_start();
    while let Some(comment) = rest.strip_prefix('#') {
        rest = comment.split_once('\n').map_or("", |(_, r)| r).trim_start();
    }
    if rest.starts_with("mutation") {
        "mutation"
    } else if rest.starts_with("subscription") {
        "subscription"
    } else {
        "query"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn operation_kinds() {
        assert_eq!(super::operation_kind("{ me { id } }"), "query");
        assert_eq!(super::operation_kind("  # hi\n mutation X { a }"), "mutation");
        assert_eq!(super::operation_kind("subscription { a }"), "subscription");
        assert_eq!(super::operation_kind("query Q { a }"), "query");
    }
}
