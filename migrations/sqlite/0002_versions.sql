-- named versions: which version a restore copied (sqlite integers are already 64-bit).
alter table document_versions add column restored_from integer;
-- versions of a document, newest first, for the history list.
create index document_versions_document on document_versions (document_id, number desc);
