-- plugins: what an admin decided about each plugin (shared by every node), and the
-- fields plugins computed for a version. Each plugin's own key/value state is
-- `plugin_state` (0001).
create table plugins (
    name            text primary key,
    enabled         boolean not null,
    config          text not null,        -- JSON object: the settings an admin set
    granted         text not null,        -- JSON array: capabilities granted
    disabled_reason text,                 -- set when the host disabled it (repeated failures)
    updated_at      text not null
);
alter table document_versions add column fields text not null default '{}';
