-- Wakes the catalogue's relay (catalogue/relay.ts) when the outbox gets rows, instead of it asking
-- PostgreSQL 20 times a second whether there are any (two queries a poll: ~2 % of a core between
-- the API process and its PostgreSQL backend, all day, with no ad changing). One notification per
-- statement that queues rows (a 10M-row COPY's range row included), delivered when its transaction
-- commits, so the relay never looks before the rows are visible; PostgreSQL folds identical
-- notifications of one transaction into one. The relay still looks now and then without one
-- (its pollMs), so a notification missed while it was reconnecting delays a change, never loses it.
create or replace function ad_changes_notify() returns trigger language plpgsql as $$
begin
  perform pg_notify('ad_changes_outbox', '');
  return null;
end $$;

drop trigger if exists ad_changes_outbox_notify on ad_changes_outbox;
create trigger ad_changes_outbox_notify after insert on ad_changes_outbox
  for each statement execute function ad_changes_notify();
