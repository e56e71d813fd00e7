-- Archiving (issue #11, docs/design.md "Snapshots and archiving"): the processor appends
-- order.archived when an order has been settled for the archive window (--archive-after)
-- and forgets it; the read model keeps the order and marks when that happened. Later
-- commands naming the order are rejected with `archived`.
alter table booking.order add column archived_at timestamptz;
