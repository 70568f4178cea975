-- PostgreSQL compresses large values with lz4 from here on; SQLite stores values
-- uncompressed, so nothing changes in this schema.
select 1;
