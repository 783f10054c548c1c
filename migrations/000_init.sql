-- Marks the start of the versioned schema. Later files: 001 catalogue, 002 speed layer store,
-- 003 batch layer counts, finalized hours and reports.
select 1;
