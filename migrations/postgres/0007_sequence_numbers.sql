-- document_seqs: the last sequence number given to an update of each document. Several
-- nodes may hold a live room for the same document at once, so sequence numbers are given
-- out here, inside the group commit that stores the updates: the commit locks each of its
-- documents' rows (in document order, so two nodes' commits never deadlock), and a second
-- commit of the same document waits for the first to end. Per document, sequence numbers
-- therefore become visible in order, with no gap and none used twice: a reader always
-- sees a prefix 1..n of the log (ARCHITECTURE.md, "Sequence numbers").
create table document_seqs (
    document_id uuid primary key,
    last_seq    bigint not null
);

insert into document_seqs (document_id, last_seq)
select document_id, max(seq) from (
    select document_id, seq from document_updates
    union all
    select document_id, seq from document_snapshots
) s group by document_id;

-- Appends a group commit's updates (of any documents, in the order given) and returns the
-- sequence number each got, in that order. One round trip and one statement from the
-- server, as the plain insert it replaces.
create function vellum_append_updates(ids uuid[], datas bytea[], authors uuid[], created timestamptz)
returns bigint[] language plpgsql as $$
declare
    seqs bigint[];
begin
    -- A document's first update (or its first since this table appeared): its row, from
    -- what is already stored (nothing, normally). A concurrent first insert waits here.
    insert into document_seqs (document_id, last_seq)
    select d, greatest(
        coalesce((select max(u.seq) from document_updates u where u.document_id = d), 0),
        coalesce((select s.seq from document_snapshots s where s.document_id = d), 0))
    from (select distinct d from unnest(ids) as t(d)) n
    where not exists (select 1 from document_seqs q where q.document_id = n.d)
    order by d
    on conflict (document_id) do nothing;
    -- Lock the rows in document order, then move each on by its updates in this batch.
    perform 1 from document_seqs where document_id = any(ids) order by document_id for update;
    with counts as (
        select d, count(*) as n from unnest(ids) as t(d) group by d
    ), bumped as (
        update document_seqs q set last_seq = q.last_seq + c.n
        from counts c where q.document_id = c.d
        returning q.document_id, q.last_seq - c.n as before
    ), numbered as (
        select i, b.before + row_number() over (partition by t.d order by t.i) as seq
        from unnest(ids) with ordinality as t(d, i) join bumped b on b.document_id = t.d
    )
    select array_agg(seq order by i) into seqs from numbered;
    insert into document_updates (document_id, seq, data, author_id, created_at)
    select d, s, x, a, created
    from unnest(ids, seqs, datas, authors) as t(d, s, x, a);
    return seqs;
end
$$;
