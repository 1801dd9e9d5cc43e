import Foundation
import Hummingbird

/// The request context of Relay's routes: Hummingbird's core storage plus the authenticated tenant.
public struct RelayRequestContext: RequestContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// Set by `TenantAuthMiddleware` on `/v1` routes.
    public var tenantID: UUID?

    /// Creates the context for a new request.
    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.tenantID = nil
    }

    /// The authenticated tenant; only called on routes behind `TenantAuthMiddleware`.
    func requireTenant() throws -> UUID {
        guard let tenantID else { throw APIError.unauthorized }
        return tenantID
    }
}

/// Reads the bearer token of the `Authorization` header.
func bearerToken(_ request: Request) -> String? {
    guard let header = request.headers[.authorization] else { return nil }
    let parts = header.split(separator: " ", maxSplits: 1)
    guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
    let token = parts[1].trimmingCharacters(in: .whitespaces)
    return token.isEmpty ? nil : token
}

/// Compares secrets without leaking the position of the first difference through timing.
func constantTimeEquals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for (x, y) in zip(a, b) { difference |= x ^ y }
    return difference == 0
}
