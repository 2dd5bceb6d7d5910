-- A key's default routing preferences (the `provider` object of a request, as JSON).
ALTER TABLE api_keys ADD COLUMN routing TEXT;
