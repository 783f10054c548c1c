-- Day rollups, caught up: hours compacted by a worker that predates the day rollups (a worker still
-- running the old code after migration 007 was applied: a rolling deploy) wrote minute and hour rows
-- but no day rows. Recompute the day rows of every day with an hour finalized since 007 from its hour
-- rows. On a database that applies 007 and 008 together there is no such hour, and this costs nothing.
-- Compactions of the new code wait meanwhile (they write day rows too); readers do not.
lock table click_counts_day, advertiser_counts_day in exclusive mode;
create temp table catch_up_days on commit drop as
  select distinct date_trunc('day', hour, 'UTC') as day from finalized_hours
   where finalized_at >= (select applied_at from schema_migrations where version = '007_time_partitions');

delete from click_counts_day where day in (select day from catch_up_days);
insert into click_counts_day (ad_id, day, clicks)
  select ad_id, date_trunc('day', hour, 'UTC'), sum(clicks) from click_counts_hour
   where hour >= (select min(day) from catch_up_days)
     and date_trunc('day', hour, 'UTC') in (select day from catch_up_days)
   group by 1, 2;

delete from advertiser_counts_day where day in (select day from catch_up_days);
insert into advertiser_counts_day (advertiser_id, day, clicks)
  select advertiser_id, date_trunc('day', hour, 'UTC'), sum(clicks) from advertiser_counts_hour
   where hour >= (select min(day) from catch_up_days)
     and date_trunc('day', hour, 'UTC') in (select day from catch_up_days)
   group by 1, 2;
