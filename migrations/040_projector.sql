-- 040_projector.sql - what booking-projector needs beyond 013/022/030 (docs/projector.md).
-- INVITE orders have no provider until invite.award (SPEC §3), so the read model shows
-- them with provider NULL instead of a made-up placeholder: the seed's NOT NULLs on the
-- provider columns are dropped. Line items get a list position, quarantine rows keep
-- the event's hashes (so `quarantine skip` can move an order's head), forks get a table.

-- An INVITE order has no provider and no service profile until invite.award.
alter table booking.order
  alter column provider_user_id drop not null,
  alter column service_profile_id drop not null;
-- An INVITE request (the invite itself) is bound to a provider only when it is awarded.
alter table booking.request alter column provider_user_id drop not null;
alter table ord.order alter column provider_user_id drop not null;

-- Where a line item sits in its order's list: seq of the event that added it * 1000 +
-- its index in that event (an event carries at most 200 items). Orders the price snapshot.
alter table booking.line_item add column list_pos bigint;
create index line_item_order_idx on booking.line_item (order_id, list_pos);

-- Lookups by order the projector, status and the dumps make.
create index request_order_idx on booking.request (order_id);
create index milestone_order_idx on booking.milestone (order_id);
create index dispute_order_idx on booking.dispute (order_id);
create index card_order_idx on ord.card (order_id);
create index card_response_card_idx on ord.card_response (card_id);

-- The quarantined event's own hashes (null when its record could not be decoded). After
-- `bookingctl quarantine skip`, the highest skipped seq with its hash is the order's head:
-- the order's next event links to it.
alter table booking_proj.quarantine
  add column hash bytea,
  add column prev_hash bytea;
create index quarantine_skipped_idx on booking_proj.quarantine (order_id, seq)
  where status = 'skipped';
create index quarantine_retry_idx on booking_proj.quarantine (order_id) where status = 'retry';

-- Forks (SPEC §5): an event whose seq is taken with another hash, or that does not link to
-- the order's last hash. The first in log order wins; later ones are reported here and
-- never applied.
create table booking_proj.fork (
  id bigserial primary key,
  order_id text not null,
  topic text not null,
  partition int not null check (partition >= 0),
  record_offset bigint not null check (record_offset >= 0),
  seq bigint not null,
  event_id text,
  hash bytea not null,
  prev_hash bytea not null,
  event bytea not null,                      -- the event, as a one-event record
  created_at timestamptz not null default now(),
  unique (topic, partition, record_offset, seq)
);
create index fork_order_idx on booking_proj.fork (order_id);

-- A card and the one superseding it may be written by separate statements (the
-- pipelined write path sends one per row): the reference is checked at the end of the
-- batch's write (the projector sets it immediate there), not after each statement.
alter table ord.card alter constraint card_superseded_by_fkey deferrable initially immediate;
