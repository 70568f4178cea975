-- the foundation schema: every table of the design, in postgresql.
-- ids are uuids (v7, time-ordered) except document_versions.id, a monotonic
-- bigint that the search indexer follows like an outbox.

create table users (
    id            uuid primary key,
    email         text not null unique,          -- stored lowercased
    display_name  text not null,
    password_hash text not null,                 -- argon2id phc string
    role          text not null check (role in ('admin', 'editor', 'author', 'viewer')),
    created_at    timestamptz not null
);

create table documents (
    id                   uuid primary key,
    title                text not null,
    slug                 text not null,
    status               text not null default 'draft'
                         check (status in ('draft', 'in_review', 'published', 'archived')),
    owner_id             uuid not null references users (id),
    lock_version         bigint not null default 1,  -- bumped by every metadata write
    published_version_id bigint,
    created_at           timestamptz not null,
    updated_at           timestamptz not null,
    deleted_at           timestamptz
);
-- a slug is unique among live documents; a deleted document frees its slug.
create unique index documents_slug_live on documents (slug) where deleted_at is null;
create index documents_updated on documents (updated_at, id);
create index documents_owner on documents (owner_id);

-- compacted yjs state and the last update sequence number it covers.
create table document_snapshots (
    document_id uuid primary key references documents (id),
    state       bytea not null,
    seq         bigint not null,
    created_at  timestamptz not null
);

-- incremental yjs updates since the snapshot, in per-document sequence order.
create table document_updates (
    document_id uuid not null references documents (id),
    seq         bigint not null,
    data        bytea not null,
    author_id   uuid,
    created_at  timestamptz not null,
    primary key (document_id, seq)
);

create table document_versions (
    id          bigint generated always as identity primary key,
    document_id uuid not null references documents (id),
    number      integer not null,
    label       text not null,
    author_id   uuid references users (id),
    state       bytea not null,
    text        text not null,
    html        text not null,
    title       text not null,
    created_at  timestamptz not null,
    unique (document_id, number)
);

create table active_sessions (
    id           uuid primary key,
    node_id      text not null,
    user_id      uuid references users (id),
    document_id  uuid not null references documents (id),
    connected_at timestamptz not null,
    heartbeat_at timestamptz not null
);
create index active_sessions_document on active_sessions (document_id);
create index active_sessions_node on active_sessions (node_id);

-- per-document grants; the owner is documents.owner_id and needs no row.
create table document_access (
    document_id uuid not null references documents (id),
    user_id     uuid not null references users (id),
    role        text not null check (role in ('editor', 'viewer')),
    granted_by  uuid references users (id),
    created_at  timestamptz not null,
    primary key (document_id, user_id)
);
create index document_access_user on document_access (user_id);

-- api tokens for external frontends; only the sha-256 of the token is kept.
create table api_tokens (
    id           uuid primary key,
    user_id      uuid not null references users (id),
    name         text not null,
    token_hash   text not null unique,
    scope        text not null check (scope in ('read', 'write')),
    created_at   timestamptz not null,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
create index api_tokens_user on api_tokens (user_id);

create table plugin_state (
    plugin     text not null,
    key        text not null,
    value      bytea not null,
    updated_at timestamptz not null,
    primary key (plugin, key)
);
