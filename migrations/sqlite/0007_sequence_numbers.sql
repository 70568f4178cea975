-- PostgreSQL's 0007 gives out sequence numbers in the database, for several nodes. An
-- SQLite database has one server process, whose group-commit writer gives them out
-- under the write turn (src/store/collab.rs, LogTail): nothing changes in this schema.
select 1;
