-- named versions: which version a restore copied, and version numbers as bigint
-- (read as 64-bit integers on both backends).
alter table document_versions alter column number type bigint;
alter table document_versions add column restored_from bigint;
-- versions of a document, newest first, for the history list.
create index document_versions_document on document_versions (document_id, number desc);
