-- Final means complete (docs/completeness.md): what the batch layer needs to know before it may call
-- an hour final, and to finalize it again when late clicks arrive.

-- Each click process (one row per spool it owns) says, every few seconds, that every click it
-- stamped before `logged_before` (its click clock) is acknowledged by Kafka on `topic`: nothing older
-- is still in flight or in its spool. `reported_at` is the database's clock, so silence is measured
-- on one clock.
create table click_process_reports (
  process_id text primary key,
  topic text not null,
  reported_at timestamptz not null default now(),
  logged_before timestamptz not null,
  spool_depth bigint not null default 0
);

-- Every raw Parquet file the archiver uploaded, by event hour. A file uploaded after an hour's
-- compaction listed S3 (`finalized_hours.listed_at`) is late: the hour is finalized again.
create table raw_files (
  hour timestamptz not null,
  key text not null,
  uploaded_at timestamptz not null default now(),
  primary key (hour, key)
);
create index raw_files_uploaded_at on raw_files (uploaded_at);

-- Versioned finals: each finalization that changes an hour's numbers is a new revision.
alter table finalized_hours add column revision integer not null default 1;
alter table finalized_hours add column listed_at timestamptz;
create table hour_revisions (
  hour timestamptz not null,
  revision integer not null,
  finalized_at timestamptz not null,
  run_id text not null,
  workflow_id text not null,
  valid_clicks bigint not null,
  events bigint not null,
  primary key (hour, revision)
);
insert into hour_revisions (hour, revision, finalized_at, run_id, workflow_id, valid_clicks, events)
  select hour, revision, finalized_at, run_id, workflow_id, valid_clicks, events from finalized_hours;
