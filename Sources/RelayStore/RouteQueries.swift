import Foundation
import PostgresNIO

/// A smarthost route as stored in `smtp_routes`; the password stays sealed (RelayDomains' SecretKeyring opens it).
public struct StoredSMTPRoute: Sendable, Equatable {
    /// The route's id, chosen by the caller (the sealed password is bound to it).
    public var id: UUID
    /// `example.org`, `*.example.org` or `*`, lower case; unique.
    public var domainPattern: String
    /// The smarthost's host name or IP address.
    public var host: String
    /// Its TCP port.
    public var port: Int
    /// The AUTH user name, with `sealedPassword`.
    public var username: String?
    /// The AES-GCM sealed password.
    public var sealedPassword: [UInt8]?
    /// Which key sealed it (`database` or a fingerprint of RELAY_SECRET_KEY).
    public var sealedWith: String?
    /// `starttls`, `implicit` or `none`.
    public var tls: String
    /// Whether the smarthost's certificate is verified.
    public var verifyCertificate: Bool
    /// When it was created.
    public var createdAt: Date

    /// Creates the value.
    public init(id: UUID, domainPattern: String, host: String, port: Int, username: String?, sealedPassword: [UInt8]?,
                sealedWith: String?, tls: String, verifyCertificate: Bool, createdAt: Date = Date()) {
        self.id = id
        self.domainPattern = domainPattern
        self.host = host
        self.port = port
        self.username = username
        self.sealedPassword = sealedPassword
        self.sealedWith = sealedWith
        self.tls = tls
        self.verifyCertificate = verifyCertificate
        self.createdAt = createdAt
    }
}

extension RelayDatabase {
    /// Stores a new route; throws `StoreError.conflict` when its domain pattern has a route already.
    public func insertRoute(_ route: StoredSMTPRoute) async throws -> StoredSMTPRoute {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                INSERT INTO smtp_routes (id, domain_pattern, host, port, username, password, sealed_with, tls, verify_certificate)
                VALUES (\(route.id), \(route.domainPattern), \(route.host), \(route.port), \(route.username),
                        \(route.sealedPassword.map { ByteBuffer(bytes: $0) }), \(route.sealedWith), \(route.tls),
                        \(route.verifyCertificate))
                ON CONFLICT (domain_pattern) DO NOTHING
                RETURNING created_at
                """, logger: logger)
            for try await createdAt in rows.decode(Date.self) {
                var stored = route
                stored.createdAt = createdAt
                return stored
            }
            throw StoreError(code: .conflict, description: "a route for \(route.domainPattern) exists")
        }
    }

    /// Every route, oldest first; or only the one with `id`.
    public func routes(id: UUID? = nil) async throws -> [StoredSMTPRoute] {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT id, domain_pattern, host, port, username, password, sealed_with, tls, verify_certificate, created_at
                FROM smtp_routes WHERE \(id)::uuid IS NULL OR id = \(id)
                ORDER BY created_at, id
                """, logger: logger)
            var result: [StoredSMTPRoute] = []
            for try await (id, pattern, host, port, username, password, sealedWith, tls, verify, createdAt) in rows.decode(
                (UUID, String, String, Int, String?, ByteBuffer?, String?, String, Bool, Date).self) {
                result.append(StoredSMTPRoute(id: id, domainPattern: pattern, host: host, port: port, username: username,
                                              sealedPassword: password.map { Array(buffer: $0) }, sealedWith: sealedWith,
                                              tls: tls, verifyCertificate: verify, createdAt: createdAt))
            }
            return result
        }
    }

    /// Deletes a route; false when there is none with `id`.
    public func deleteRoute(id: UUID) async throws -> Bool {
        try await withDeadline { [self] in
            let rows = try await client.query("DELETE FROM smtp_routes WHERE id = \(id) RETURNING 1", logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }
}
