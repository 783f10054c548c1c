-- The last failure of an hour's compaction (a bound passed, retries exhausted): shown as `failed` in
-- GET /v1/admin/hours and picked up by the sweep (workflows: sweepHours). A finalization clears it.
create table hour_failures (
  hour timestamptz primary key,
  failed_at timestamptz not null default now(),
  workflow_id text not null,
  reason text not null
);
