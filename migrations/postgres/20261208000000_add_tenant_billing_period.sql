-- A tenant's billing periods: monthly from this day of the month (1-31, clamped to the month's
-- last day) at local midnight in this IANA time zone (issue 19).
ALTER TABLE tenants ADD COLUMN billing_anchor_day BIGINT NOT NULL DEFAULT 1;
ALTER TABLE tenants ADD COLUMN billing_time_zone TEXT NOT NULL DEFAULT 'UTC';
