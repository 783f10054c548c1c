-- Retention tiers (common/retention.ts): the batch count tables become partitioned by time, so that
-- expiry drops a partition. Minute tables by day, hour tables by month, and new day rollups (per ad
-- and per advertiser) by year.
--
-- Swap, then move by partition: each existing table is renamed and attached, as it is, as the
-- DEFAULT partition of its new partitioned table. That takes no copy and only a brief lock, so it
-- is safe while the API reads and a compaction waits (the migration holds the migration advisory
-- lock, and takes the tables' locks in one order). The retention workflow then creates the tier's
-- partitions, and creating a partition moves the default partition's rows of its range into it
-- (batch-layer/partitions.ts). Rows outside every tier's window (tests' far-past hours, backfills of
-- hours the tier never held) stay in the default partition, which retention never drops.
lock table click_counts_minute, click_counts_hour, advertiser_counts_minute, advertiser_counts_hour
  in access exclusive mode;

alter table click_counts_minute rename to click_counts_minute_default;
alter table click_counts_minute_default rename constraint click_counts_minute_pkey to click_counts_minute_default_pkey;
alter table click_counts_minute_default rename constraint click_counts_minute_clicks_check to clicks_positive;
alter index click_counts_minute_minute rename to click_counts_minute_default_minute;
create table click_counts_minute (
  ad_id bigint not null,
  minute timestamptz not null,
  clicks integer not null constraint clicks_positive check (clicks > 0),
  primary key (ad_id, minute)
) partition by range (minute);
create index click_counts_minute_minute on click_counts_minute (minute);
alter table click_counts_minute attach partition click_counts_minute_default default;

alter table advertiser_counts_minute rename to advertiser_counts_minute_default;
alter table advertiser_counts_minute_default rename constraint advertiser_counts_minute_pkey to advertiser_counts_minute_default_pkey;
alter table advertiser_counts_minute_default rename constraint advertiser_counts_minute_clicks_check to clicks_positive;
alter index advertiser_counts_minute_minute rename to advertiser_counts_minute_default_minute;
create table advertiser_counts_minute (
  advertiser_id bigint not null,
  minute timestamptz not null,
  clicks integer not null constraint clicks_positive check (clicks > 0),
  primary key (advertiser_id, minute)
) partition by range (minute);
create index advertiser_counts_minute_minute on advertiser_counts_minute (minute);
alter table advertiser_counts_minute attach partition advertiser_counts_minute_default default;

alter table click_counts_hour rename to click_counts_hour_default;
alter table click_counts_hour_default rename constraint click_counts_hour_pkey to click_counts_hour_default_pkey;
alter table click_counts_hour_default rename constraint click_counts_hour_clicks_check to clicks_positive;
alter index click_counts_hour_hour rename to click_counts_hour_default_hour;
create table click_counts_hour (
  ad_id bigint not null,
  hour timestamptz not null,
  clicks integer not null constraint clicks_positive check (clicks > 0),
  primary key (ad_id, hour)
) partition by range (hour);
create index click_counts_hour_hour on click_counts_hour (hour);
alter table click_counts_hour attach partition click_counts_hour_default default;

alter table advertiser_counts_hour rename to advertiser_counts_hour_default;
alter table advertiser_counts_hour_default rename constraint advertiser_counts_hour_pkey to advertiser_counts_hour_default_pkey;
alter table advertiser_counts_hour_default rename constraint advertiser_counts_hour_clicks_check to clicks_positive;
alter index advertiser_counts_hour_hour rename to advertiser_counts_hour_default_hour;
create table advertiser_counts_hour (
  advertiser_id bigint not null,
  hour timestamptz not null,
  clicks bigint not null constraint clicks_positive check (clicks > 0),
  primary key (advertiser_id, hour)
) partition by range (hour);
create index advertiser_counts_hour_hour on advertiser_counts_hour (hour);
alter table advertiser_counts_hour attach partition advertiser_counts_hour_default default;

-- Day rollups: written by compaction in the same transaction as the hour they sum
-- (batch-layer/compaction.ts), seeded here from the hour rows. `day` is the UTC day's start.
create table click_counts_day (
  ad_id bigint not null,
  day timestamptz not null,
  clicks bigint not null constraint clicks_positive check (clicks > 0),
  primary key (ad_id, day)
) partition by range (day);
create index click_counts_day_day on click_counts_day (day);
create table click_counts_day_default partition of click_counts_day default;
create table advertiser_counts_day (
  advertiser_id bigint not null,
  day timestamptz not null,
  clicks bigint not null constraint clicks_positive check (clicks > 0),
  primary key (advertiser_id, day)
) partition by range (day);
create index advertiser_counts_day_day on advertiser_counts_day (day);
create table advertiser_counts_day_default partition of advertiser_counts_day default;

insert into click_counts_day (ad_id, day, clicks)
  select ad_id, date_trunc('day', hour, 'UTC'), sum(clicks) from click_counts_hour group by 1, 2;
insert into advertiser_counts_day (advertiser_id, day, clicks)
  select advertiser_id, date_trunc('day', hour, 'UTC'), sum(clicks) from advertiser_counts_hour group by 1, 2;

-- Partitions retention dropped: a late compaction of an hour in one of these ranges leaves that
-- tier alone instead of writing the hour into the default partition.
create table expired_partitions (
  table_name text not null,
  range_from timestamptz not null,
  range_to timestamptz not null,
  dropped_at timestamptz not null default now(),
  primary key (table_name, range_from)
);
