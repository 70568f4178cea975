-- SQLite appends the update log's newest rows to a table of their own and moves them into
-- document_updates in bulk (its 0005: there a commit wrote a page per document it
-- touched). PostgreSQL appends rows to its heap in arrival order and logs index changes,
-- not whole pages, so nothing changes in this schema.
select 1;
