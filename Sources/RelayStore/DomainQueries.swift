import Foundation
import PostgresNIO

/// A sender domain registered to a tenant.
public struct DomainRecord: Sendable, Equatable {
    /// Lowercased domain name.
    public var name: String
    /// When it was registered.
    public var createdAt: Date
}

extension RelayDatabase {
    /// Registers a domain for a tenant; throws `StoreError.conflict` when the tenant has it already.
    public func addDomain(tenantID: UUID, name: String) async throws -> DomainRecord {
        try await withDeadline { [self] in
            do {
                let rows = try await client.query("""
                    INSERT INTO domains (tenant_id, name) VALUES (\(tenantID), \(name)) RETURNING name, created_at
                    """, logger: logger)
                for try await (name, createdAt) in rows.decode((String, Date).self) {
                    return DomainRecord(name: name, createdAt: createdAt)
                }
            } catch where error.isUniqueViolation {
                throw StoreError(code: .conflict, description: "domain \(name) is already registered")
            }
            throw StoreError(code: .conflict, description: "domain insert returned no row")
        }
    }

    /// The tenant's domains, sorted by name.
    public func domains(tenantID: UUID) async throws -> [DomainRecord] {
        try await withDeadline { [self] in
            let rows = try await client.query(
                "SELECT name, created_at FROM domains WHERE tenant_id = \(tenantID) ORDER BY name", logger: logger)
            var result: [DomainRecord] = []
            for try await (name, createdAt) in rows.decode((String, Date).self) {
                result.append(DomainRecord(name: name, createdAt: createdAt))
            }
            return result
        }
    }

    /// Whether the tenant may send from this (lowercased) domain.
    public func hasDomain(tenantID: UUID, name: String) async throws -> Bool {
        try await withDeadline { [self] in
            let rows = try await client.query(
                "SELECT 1 FROM domains WHERE tenant_id = \(tenantID) AND name = \(name)", logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }
}
