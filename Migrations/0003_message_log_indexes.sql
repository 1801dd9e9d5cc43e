-- Indexes for the delivery-log query (GET /v1/messages): newest first per tenant with keyset pagination on
-- (created_at, id), filtered by sender, tag, or any recipient's address, domain or status.
CREATE INDEX messages_tenant_from_created ON messages (tenant_id, mail_from, created_at DESC, id DESC);
CREATE INDEX messages_tags ON messages USING gin (tags);
CREATE INDEX recipients_tenant_email ON recipients (tenant_id, email, message_id);
CREATE INDEX recipients_tenant_domain ON recipients (tenant_id, domain, message_id);
CREATE INDEX recipients_tenant_status ON recipients (tenant_id, status, message_id);
