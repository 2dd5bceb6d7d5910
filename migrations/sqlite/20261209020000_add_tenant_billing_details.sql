-- Who a tenant's invoices are addressed to (issue 19): legal name, email, address, tax id, as a
-- JSON object (every field optional).
ALTER TABLE tenants ADD COLUMN billing_details TEXT NOT NULL DEFAULT '{}';
