-- The catalogue's change feed (docs/catalogue-replica.md): every write to `ads` leaves a row here
-- in the same transaction, so no write can be missed: a row per ad written by the API (or any SQL),
-- and one range row per bulk COPY (tools/catalogue-load.ts writes it itself, see there). The relay (catalogue/relay.ts, in the API process) publishes
-- each changed ad's current row (to_jsonb, so columns added to `ads` later flow through untouched;
-- a tombstone when it is gone) to the compacted topic `ad-changes`, key = the ad id, and deletes the
-- rows Kafka acked. Only the id is kept here: reading the row at publish time makes a 10M-row COPY
-- write 10M small rows, not 10M copies of the ads, and what is published is never older than
-- the change that queued it.
create table if not exists ad_changes_outbox (
  seq bigint generated always as identity primary key,
  ad_id bigint not null,
  -- Set: every ad from ad_id to last_ad_id (a bulk load writes one such row, tools/catalogue-load.ts);
  -- the relay publishes the range in chunks, moving ad_id forward after each ack.
  last_ad_id bigint
);

-- Statement-level triggers with transition tables: a 10M-row COPY queues its ids with one
-- set-based insert per statement instead of firing 10M row triggers.
create or replace function ad_changes_capture() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE' then
    insert into ad_changes_outbox (ad_id) select o.ad_id from old_ads o;
  else
    insert into ad_changes_outbox (ad_id) select n.ad_id from new_ads n;
  end if;
  return null;
end $$;

drop trigger if exists ads_changes_insert on ads;
create trigger ads_changes_insert after insert on ads
  referencing new table as new_ads for each statement execute function ad_changes_capture();
drop trigger if exists ads_changes_update on ads;
create trigger ads_changes_update after update on ads
  referencing new table as new_ads for each statement execute function ad_changes_capture();
drop trigger if exists ads_changes_delete on ads;
create trigger ads_changes_delete after delete on ads
  referencing old table as old_ads for each statement execute function ad_changes_capture();

-- Ads that exist before the feed does are published once too, so the compacted topic alone holds the
-- whole catalogue (a replica may be built from it without PostgreSQL).
insert into ad_changes_outbox (ad_id, last_ad_id) select min(ad_id), max(ad_id) from ads having count(*) > 0;
