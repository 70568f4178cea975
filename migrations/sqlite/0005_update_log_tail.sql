-- The update log's newest rows, on SQLite. document_updates is keyed (document_id, seq),
-- so a group commit holding updates of many documents wrote a 4 KiB page of that table
-- per document: with 256 documents edited at once, 5.7 KB went to disk per update, and
-- the commits, not the CPU, set the pace (BENCHMARKS.md, change 42). A group commit of
-- three or more documents appends here instead, in arrival order, so it writes only the
-- table's last pages; smaller ones still go straight into document_updates. The writer
-- moves these rows into document_updates every few thousand rows (and when it has been
-- idle a moment), sorted, a range of a few hundred rows per statement between group
-- commits, then deletes them all in one: each document's page is written once per move.
-- Until that deletion a moved row is in both tables, and readers skip the copy here;
-- rows a snapshot covers are skipped too, and never moved. Not indexed: an index by
-- document would be written a page per document again. Readers scan it; the moves keep
-- it small.
create table document_updates_recent (
    id          integer primary key,
    document_id blob not null references documents (id),
    seq         integer not null,
    data        blob not null,
    author_id   blob,
    created_at  text not null
);
