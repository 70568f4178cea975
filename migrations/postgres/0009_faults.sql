-- node_heartbeats: one row per node, written by /readyz's write probe once the group
-- commit failed for want of the database (locked, full, unreachable): readiness comes
-- back when a real write succeeds again, not merely a read. `probe` holds the probe's
-- 256 KiB for the moment of the write (on a full disk a small write can still fit in
-- space the database's log already has), then is cleared.
create table node_heartbeats (
    node_id text primary key,
    beat_at timestamptz not null,
    probe   bytea
);

-- set_aside_rows: stored rows of a document's state that `vellum doctor --repair` took
-- out because they do not decode or apply (a damaged update or snapshot). Vellum never
-- deletes them: nothing stored is lost, and they can be examined or put back by hand.
create table set_aside_rows (
    id           bigint generated always as identity primary key,
    document_id  uuid not null,
    kind         text not null check (kind in ('update', 'snapshot')),
    seq          bigint not null,
    data         bytea not null,
    reason       text not null,
    set_aside_at timestamptz not null
);
create index set_aside_rows_document on set_aside_rows (document_id);
