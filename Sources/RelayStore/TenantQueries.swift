import Foundation
import PostgresNIO
import RelayCore

/// A tenant: an isolated account with its own API keys, domains and messages.
public struct TenantRecord: Sendable, Equatable {
    /// Tenant id.
    public var id: UUID
    /// Display name.
    public var name: String
    /// When it was created.
    public var createdAt: Date
}

extension RelayDatabase {
    /// Creates a tenant with one API key; returns the tenant and the key (the only time the key exists in clear).
    public func createTenant(name: String) async throws -> (tenant: TenantRecord, apiKey: String) {
        try await withDeadline { [self] in
            let id = TimeOrderedUUID.make()
            let apiKey = APIKeyFormat.generate()
            let hash = ByteBuffer(bytes: Self.hashAPIKey(apiKey))
            let prefix = String(apiKey.prefix(APIKeyFormat.prefix.count + 6))
            let rows = try await client.query("""
                WITH t AS (INSERT INTO tenants (id, name) VALUES (\(id), \(name)) RETURNING id, name, created_at),
                     k AS (INSERT INTO api_keys (key_hash, tenant_id, key_prefix) SELECT \(hash), id, \(prefix) FROM t)
                SELECT id, name, created_at FROM t
                """, logger: logger)
            for try await (id, name, createdAt) in rows.decode((UUID, String, Date).self) {
                return (TenantRecord(id: id, name: name, createdAt: createdAt), apiKey)
            }
            throw StoreError(code: .conflict, description: "tenant insert returned no row")
        }
    }

    /// The tenant an API key belongs to, or nil for an unknown or revoked key.
    public func tenantID(forAPIKeyHash hash: [UInt8]) async throws -> UUID? {
        try await withDeadline { [self] in
            let rows = try await client.query(
                "SELECT tenant_id FROM api_keys WHERE key_hash = \(ByteBuffer(bytes: hash)) AND revoked_at IS NULL",
                logger: logger)
            for try await id in rows.decode(UUID.self) { return id }
            return nil
        }
    }

    /// How many tenants exist (to tell a first-time operator how to create one).
    public func tenantCount() async throws -> Int {
        for try await count in try await client.query("SELECT count(*)::bigint FROM tenants", logger: logger).decode(Int.self) {
            return count
        }
        return 0
    }
}
