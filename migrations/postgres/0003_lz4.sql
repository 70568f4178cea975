-- large values (snapshots, versions) compressed with lz4 rather than pglz: a fresh client
-- opening a document reads its whole snapshot, and reading an 85 KB one took 0.26 ms
-- instead of 0.38 ms, for 42 KB on disk instead of 36 KB (BENCHMARKS.md, change 24).
-- Values already stored keep pglz until rewritten; a server built without lz4 (or older
-- than PostgreSQL 14) keeps pglz for everything.
do $$
begin
    execute 'alter table document_snapshots alter column state set compression lz4';
    execute 'alter table document_versions alter column state set compression lz4, '
        'alter column text set compression lz4, alter column html set compression lz4';
exception when others then
    raise notice 'lz4 is not available (%): large values stay compressed with pglz', sqlerrm;
end
$$;
