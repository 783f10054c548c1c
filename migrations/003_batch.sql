-- Batch layer: authoritative counts written by hourly compaction, replaced one hour at a time in a
-- single transaction together with the rollups and the finalized-hours row.
create table click_counts_minute (
  ad_id bigint not null,
  minute timestamptz not null,
  clicks integer not null check (clicks > 0),
  primary key (ad_id, minute)
);
create table click_counts_hour (
  ad_id bigint not null,
  hour timestamptz not null,
  clicks integer not null check (clicks > 0),
  primary key (ad_id, hour)
);
-- Per-advertiser rollups keep "1,000 ads over 7 days by hour" a handful of index reads.
create table advertiser_counts_minute (
  advertiser_id bigint not null,
  minute timestamptz not null,
  clicks integer not null check (clicks > 0),
  primary key (advertiser_id, minute)
);
create table advertiser_counts_hour (
  advertiser_id bigint not null,
  hour timestamptz not null,
  clicks bigint not null check (clicks > 0),
  primary key (advertiser_id, hour)
);
-- Compaction replaces one hour at a time: these let "delete the hour's rows" find them without a scan.
create index click_counts_minute_minute on click_counts_minute (minute);
create index click_counts_hour_hour on click_counts_hour (hour);
create index advertiser_counts_minute_minute on advertiser_counts_minute (minute);
create index advertiser_counts_hour_hour on advertiser_counts_hour (hour);
-- An hour is final once a compaction run has replaced its rows; the run and workflow are recorded.
create table finalized_hours (
  hour timestamptz primary key,
  run_id text not null,
  workflow_id text not null,
  finalized_at timestamptz not null default now(),
  valid_clicks bigint not null,
  events bigint not null
);
-- Archiver progress: every event of `topic/partition` before `watermark` is in S3.
create table archive_watermarks (
  topic text not null,
  partition integer not null,
  watermark timestamptz not null,
  updated_at timestamptz not null default now(),
  primary key (topic, partition)
);
create table reconciliation_reports (
  day date primary key,
  created_at timestamptz not null default now(),
  speed_total bigint not null,
  batch_total bigint not null,
  report jsonb not null
);
