-- The amount a payment captured (payment.captured's amount_cents), beside the order's
-- totals: revenue queries read it without joining the timeline. The projector copies it
-- because the field's schema row names this column (core/bk_schema.c); this migration and
-- that row are the whole change (issue #14: a projected column is a schema row plus a
-- migration).
alter table booking.order add column captured_cents int;
