import Foundation
import Hummingbird
import RelayStore
import Synchronization

/// Authenticates `/v1` requests by API key: the SHA-256 of the bearer token is looked up in `api_keys`.
/// Successful lookups are cached for a short time so that a busy sender does not cost a query per request.
struct TenantAuthMiddleware: RouterMiddleware {
    typealias Context = RelayRequestContext
    let database: RelayDatabase
    let cache: KeyCache

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = bearerToken(request) else { throw APIError.unauthorized }
        let hash = RelayDatabase.hashAPIKey(token)
        let tenant: UUID
        if let cached = cache.lookup(hash) {
            tenant = cached
        } else if let found = try await database.tenantID(forAPIKeyHash: hash) {
            cache.store(hash, tenant: found)
            tenant = found
        } else {
            throw APIError.unauthorized
        }
        var context = context
        context.tenantID = tenant
        return try await next(request, context)
    }
}

/// A small time-bounded cache of API key hash → tenant.
final class KeyCache: Sendable {
    private let entries = Mutex([[UInt8]: (tenant: UUID, until: ContinuousClock.Instant)]())
    private let ttl: Duration

    init(ttl: Duration = .seconds(30)) {
        self.ttl = ttl
    }

    func lookup(_ hash: [UInt8]) -> UUID? {
        entries.withLock { entries in
            guard let entry = entries[hash] else { return nil }
            if entry.until < .now {
                entries[hash] = nil
                return nil
            }
            return entry.tenant
        }
    }

    func store(_ hash: [UInt8], tenant: UUID) {
        entries.withLock { entries in
            if entries.count > 10_000 { entries.removeAll() }
            entries[hash] = (tenant, .now + ttl)
        }
    }
}

/// Guards `/admin`: without a configured token every admin route answers 404 (as if it did not exist);
/// with one, a wrong or missing bearer token is 401.
struct AdminAuthMiddleware: RouterMiddleware {
    typealias Context = RelayRequestContext
    let adminToken: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let adminToken, !adminToken.isEmpty else { throw APIError.notFound }
        guard let token = bearerToken(request), constantTimeEquals(Array(token.utf8), Array(adminToken.utf8)) else {
            throw APIError(.unauthorized, code: "unauthorized", message: "missing or invalid admin token")
        }
        return try await next(request, context)
    }
}
