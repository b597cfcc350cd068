-- An email address is an identity within a tenant, not on the whole platform. A platform-wide unique
-- email let anyone learn, from a sign-up or an invitation answering "already exists", whether an address
-- had an account anywhere, and let any tenant squat an address by creating a user with it before its owner
-- signed up. Now each tenant's users are unique by email, the same person may belong to several tenants,
-- and a login names the tenant when the address has accounts in more than one.
ALTER TABLE users DROP CONSTRAINT users_email_key;
ALTER TABLE users ADD CONSTRAINT users_tenant_email_key UNIQUE (tenant_id, email);
CREATE INDEX users_email_idx ON users (email);
