import Foundation
import PostgresNIO

extension RelayDatabase {
    /// The address a recipient delivery went to, for the unsubscribe confirmation page (nil: no such recipient).
    public func unsubscribeTarget(recipientID: Int64) async throws -> String? {
        try await withDeadline { [self] in
            let rows = try await client.query("SELECT email FROM recipients WHERE id = \(recipientID)", logger: logger)
            for try await email in rows.decode(String.self) { return email }
            return nil
        }
    }

    /// One-click unsubscribe (RFC 8058) of a recipient delivery: its address goes on the tenant's suppression list
    /// with reason `unsubscribed` (replacing an expiring entry, never a permanent one of another reason) and the
    /// recipient gets an `unsubscribed` event, once however often the link is used. Returns the address, or nil
    /// when the recipient does not exist.
    public func unsubscribe(recipientID: Int64) async throws -> String? {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                WITH r AS (
                    SELECT r.id, r.email, r.message_id, m.tenant_id FROM recipients r JOIN messages m ON m.id = r.message_id
                    WHERE r.id = \(recipientID)
                ), listed AS (
                    INSERT INTO suppressions AS s (tenant_id, email_lower, email, reason, source_message_id)
                    SELECT tenant_id, lower(email), email, 'unsubscribed', message_id FROM r
                    ON CONFLICT (tenant_id, email_lower) DO UPDATE
                        SET reason = 'unsubscribed', source_message_id = excluded.source_message_id, created_at = now(),
                            expires_at = NULL
                        WHERE s.expires_at IS NOT NULL
                    RETURNING 1
                ), event AS (
                    INSERT INTO events (tenant_id, message_id, recipient_id, type)
                    SELECT tenant_id, message_id, id, 'unsubscribed' FROM r
                    WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = r.message_id AND e.recipient_id = r.id
                                                              AND e.type = 'unsubscribed')
                    RETURNING 1
                )
                SELECT email FROM r
                """, logger: logger)
            for try await email in rows.decode(String.self) { return email }
            return nil
        }
    }
}
