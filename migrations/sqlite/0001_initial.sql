-- the foundation schema: every table of the design, in sqlite.
-- same logical schema as migrations/postgres/0001_initial.sql. sqlite stores
-- uuids as 16-byte blobs and times as rfc 3339 text in utc (sqlx's encoding), which
-- sorts in time order; document_versions.id is an autoincrement rowid, never reused.

create table users (
    id            blob primary key,
    email         text not null unique,
    display_name  text not null,
    password_hash text not null,
    role          text not null check (role in ('admin', 'editor', 'author', 'viewer')),
    created_at    text not null
);

create table documents (
    id                   blob primary key,
    title                text not null,
    slug                 text not null,
    status               text not null default 'draft'
                         check (status in ('draft', 'in_review', 'published', 'archived')),
    owner_id             blob not null references users (id),
    lock_version         integer not null default 1,
    published_version_id integer,
    created_at           text not null,
    updated_at           text not null,
    deleted_at           text
);
create unique index documents_slug_live on documents (slug) where deleted_at is null;
create index documents_updated on documents (updated_at, id);
create index documents_owner on documents (owner_id);

create table document_snapshots (
    document_id blob primary key references documents (id),
    state       blob not null,
    seq         integer not null,
    created_at  text not null
);

create table document_updates (
    document_id blob not null references documents (id),
    seq         integer not null,
    data        blob not null,
    author_id   blob,
    created_at  text not null,
    primary key (document_id, seq)
) without rowid;

create table document_versions (
    id          integer primary key autoincrement,
    document_id blob not null references documents (id),
    number      integer not null,
    label       text not null,
    author_id   blob references users (id),
    state       blob not null,
    text        text not null,
    html        text not null,
    title       text not null,
    created_at  text not null,
    unique (document_id, number)
);

create table active_sessions (
    id           blob primary key,
    node_id      text not null,
    user_id      blob references users (id),
    document_id  blob not null references documents (id),
    connected_at text not null,
    heartbeat_at text not null
);
create index active_sessions_document on active_sessions (document_id);
create index active_sessions_node on active_sessions (node_id);

create table document_access (
    document_id blob not null references documents (id),
    user_id     blob not null references users (id),
    role        text not null check (role in ('editor', 'viewer')),
    granted_by  blob references users (id),
    created_at  text not null,
    primary key (document_id, user_id)
);
create index document_access_user on document_access (user_id);

create table api_tokens (
    id           blob primary key,
    user_id      blob not null references users (id),
    name         text not null,
    token_hash   text not null unique,
    scope        text not null check (scope in ('read', 'write')),
    created_at   text not null,
    last_used_at text,
    revoked_at   text
);
create index api_tokens_user on api_tokens (user_id);

create table plugin_state (
    plugin     text not null,
    key        text not null,
    value      blob not null,
    updated_at text not null,
    primary key (plugin, key)
);
