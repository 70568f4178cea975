-- access_epoch: a counter that every change able to take access away bumps, in the
-- same transaction (triggers, so no code path can forget): a share changed or removed,
-- a document deleted, an API token revoked. Each node polls it and, when it moved,
-- checks its open document sockets and subscriptions again. Such changes are rare;
-- the row they share is not on any editing path.
create table access_epoch (
    id    integer primary key check (id = 1),
    epoch bigint not null
);
insert into access_epoch (id, epoch) values (1, 0);

create function vellum_bump_access_epoch() returns trigger
language plpgsql as $$
begin
    update access_epoch set epoch = epoch + 1 where id = 1;
    return null;
end
$$;

create trigger access_share_changed after update or delete on document_access
    for each statement execute function vellum_bump_access_epoch();

create trigger access_document_deleted after update of deleted_at on documents
    for each row when (new.deleted_at is not null and old.deleted_at is null)
    execute function vellum_bump_access_epoch();

create trigger access_token_revoked after update of revoked_at on api_tokens
    for each row when (new.revoked_at is not null and old.revoked_at is null)
    execute function vellum_bump_access_epoch();
