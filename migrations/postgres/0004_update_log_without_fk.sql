-- the update log (document_updates) takes every edit, one group commit at a time, and its
-- foreign key to documents made each inserted row run a check that locks the document's
-- row (select ... for key share): 2-3 us of the database server's CPU per update, plus a
-- write to the documents row on every commit. Loading 50 documents at once went from
-- 85-96k to 118-126k updates/s without it, the ceiling from 38.7-41.0k to 42.8-44.5k
-- (BENCHMARKS.md, change 30). Nothing depends on it: documents are never deleted
-- (deleted_at marks them), and only a room writes updates, for a document that exists
-- when it opens. Snapshots, versions and the other tables keep theirs.
alter table document_updates drop constraint if exists document_updates_document_id_fkey;
