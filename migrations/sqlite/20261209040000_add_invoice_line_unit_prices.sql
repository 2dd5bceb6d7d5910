-- A usage line's unit prices for the tenant when its invoice was finalized (JSON: dollars per
-- million tokens of each kind and per request; NULL when the model's deployments are priced
-- differently). The line's amount is always what its records were charged.
ALTER TABLE invoice_lines ADD COLUMN unit_prices TEXT;
