-- Final counts can be neither destroyed nor doubled (docs/completeness.md).

-- An hour's last unsuccessful compaction is either `failed` (an error, or a refusal) or `waiting`
-- (it gave up waiting for completeness: not an error, the sweep starts it again). GET /v1/admin/hours
-- shows which, with what it waits for.
alter table hour_failures add column kind text not null default 'failed'
  check (kind in ('failed', 'waiting'));

-- The raw cutoff retention applied, per S3 prefix: raw files of hours before `raw_before` are gone
-- (or going: the row is written before anything is deleted). A compaction of such an hour is
-- refused; the late path and the sweep start there.
create table raw_expiry (
  prefix text primary key,
  raw_before timestamptz not null,
  recorded_at timestamptz not null default now()
);

-- Finals that changed after they were billed: each revision after an hour's first keeps, per ad and
-- per advertiser, the clicks before and after it (only the keys whose count changed).
create table hour_adjustments (
  hour timestamptz not null,
  revision integer not null,
  scope text not null check (scope in ('ad', 'advertiser')),
  id bigint not null,
  clicks_before bigint not null,
  clicks_after bigint not null,
  primary key (hour, revision, scope, id)
);
create index hour_adjustments_by_key on hour_adjustments (scope, id, hour);
