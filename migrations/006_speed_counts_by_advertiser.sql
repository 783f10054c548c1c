-- Advertiser-wide provisional reads (SPEED_STORE=postgres) keyed by the advertiser, not by a list of
-- its ad ids: each (ad, minute, salt) row carries the ad's advertiser, indexed by (advertiser, minute).
-- Rows written before this migration get it from the catalogue here, once; the sink writes it from
-- the click event from now on (speed-layer/postgres-sink.ts).
alter table speed_counts_minute add column if not exists advertiser_id bigint;
update speed_counts_minute s set advertiser_id = a.advertiser_id
  from ads a where a.ad_id = s.ad_id and s.advertiser_id is null;
create index if not exists speed_counts_minute_advertiser on speed_counts_minute (advertiser_id, minute);
