-- Records and events the reader rule rejected (docs/design.md, "The reader rule"): unsealed,
-- bad hash, bad link, garbage, bad seals. Reported here by the projector, never applied,
-- never holding back valid events. Forks keep their own table (booking_proj.fork).
create table booking_proj.rejected (
  id bigserial primary key,
  order_id text not null,
  topic text not null,
  partition int not null check (partition >= 0),
  record_offset bigint not null check (record_offset >= 0),
  seq bigint,
  event_id text,
  verdict text not null check (verdict in ('unsealed', 'bad_hash', 'bad_link', 'garbage')),
  reason text not null,
  record bytea,
  created_at timestamptz not null default now()
);
create unique index rejected_record_idx on booking_proj.rejected
  (topic, partition, record_offset, coalesce(seq, -1));
create index rejected_order_idx on booking_proj.rejected (order_id);
