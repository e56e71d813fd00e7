-- 030_projection.sql - what the event-sourced projector needs beyond the seed schemas.
-- ord.timeline_event rows carry their place in the order's log (seq = the order's version,
-- unique per order) and hash chain; schema booking_proj keeps the projector's own
-- bookkeeping (partition checkpoints, quarantined orders) apart from the read model.

alter table ord.timeline_event
  add column seq bigint,                     -- 1, 2, 3... per order (the order's version)
  add column command_id text,                -- the command that produced the event
  add column hash bytea,                     -- BLAKE2b-256(prev_hash || canonical msgpack)
  add column prev_hash bytea,                -- 32 zero bytes for an order's first event
  add column schema int,                     -- event schema version (upcast on read)
  add constraint timeline_event_order_seq_key unique (order_id, seq),
  add constraint timeline_event_seq_check check (seq is null or seq >= 1),
  add constraint timeline_event_hash_check check (hash is null or octet_length(hash) = 32),
  add constraint timeline_event_prev_hash_check check (prev_hash is null or octet_length(prev_hash) = 32);

create index timeline_event_command_id_idx on ord.timeline_event (command_id);

-- Also created by the migration runner (it keeps booking_proj.schema_migrations there).
create schema if not exists booking_proj;

-- One row per (topic, partition): the offset of the next record to project. Written in
-- the same transaction as the rows a batch projects, so a crash loses nothing and a
-- replayed record is a no-op (the per-order seq guard).
create table booking_proj.checkpoint (
  topic text not null,
  partition int not null check (partition >= 0),
  next_offset bigint not null check (next_offset >= 0),
  updated_at timestamptz not null default now(),
  primary key (topic, partition)
);

-- Events that could not be applied. The first one quarantines its order; the order's later
-- events wait here too (status held) while every other order goes on. `bookingctl
-- quarantine` lists them and sets retry (the projector re-applies in seq order, then
-- applied) or skipped. record_offset is the Kafka offset of the record (a column cannot
-- be called offset without quoting); seq is null when the bytes could not be decoded.
create table booking_proj.quarantine (
  id bigserial primary key,
  order_id text not null,
  topic text not null,
  partition int not null check (partition >= 0),
  record_offset bigint not null check (record_offset >= 0),
  seq bigint,
  event_id text,
  reason text not null,
  event bytea not null,                      -- the event's bytes as read from the log
  status text not null default 'held' check (status in ('held','retry','skipped','applied')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (topic, partition, record_offset, order_id, seq)
);

create index quarantine_waiting_idx on booking_proj.quarantine (order_id, seq)
  where status in ('held','retry');
