-- Speed layer store for SPEED_STORE=postgres: provisional counts per (ad, salt, minute), and the
-- consumed position of each clicks partition, written in the same transaction as the counts so a
-- restarted consumer neither loses nor double-counts (see speed-layer/postgres-sink.ts).
create table if not exists speed_counts_minute (
  ad_id bigint not null,
  minute timestamptz not null,
  salt smallint not null,
  clicks integer not null check (clicks >= 0),
  -- (ad, minute) first: the read path scans one ad's minute range and sums the salts.
  primary key (ad_id, minute, salt)
);
create table if not exists speed_offsets (
  group_id text not null,
  topic text not null,
  partition integer not null,
  -- Next offset to count: every event before it is in speed_counts_minute.
  next_offset bigint not null,
  -- First offset of the events of the still-open minutes: re-read from here (without counting) to
  -- rebuild the impression ids of the open window.
  replay_from bigint not null,
  -- Newest valid event time seen (epoch ms); null before the first one.
  watermark bigint,
  updated_at timestamptz not null default now(),
  primary key (group_id, topic, partition)
);
