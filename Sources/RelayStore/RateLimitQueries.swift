import Foundation
import PostgresNIO

/// What a rate-limit reservation decided.
public enum SendReservation: Sendable, Equatable {
    /// Within the budget; the sends are counted.
    case granted
    /// Over the budget; nothing was counted. Retry after this many seconds (the current window's end).
    case refused(retryAfterSeconds: Int)
}

extension RelayDatabase {
    /// The length of a rate-limit window.
    public static let rateLimitWindow = 60

    /// Counts `count` sends against the tenant's budget of `limit` per one-minute window, cluster-wide: one
    /// statement whose conditional upsert takes the row lock, so concurrent accepts on any node cannot overshoot.
    /// Older windows of the tenant are deleted on the way.
    public func reserveSends(tenantID: UUID, count: Int, limit: Int) async throws -> SendReservation {
        let window = Self.rateLimitWindow
        let untilNextWindow = max(1, window - Int(Date().timeIntervalSince1970) % window)
        guard count <= limit else { return .refused(retryAfterSeconds: untilNextWindow) }
        return try await withDeadline { [self] in
            let rows = try await client.query("""
                WITH w AS (
                    SELECT to_timestamp(floor(extract(epoch FROM now()) / \(window)) * \(window)) AS start
                ), old AS (
                    DELETE FROM tenant_send_counts WHERE tenant_id = \(tenantID) AND window_start < (SELECT start FROM w)
                ), up AS (
                    INSERT INTO tenant_send_counts AS c (tenant_id, window_start, count)
                    SELECT \(tenantID), start, \(count) FROM w
                    ON CONFLICT (tenant_id, window_start) DO UPDATE SET count = c.count + excluded.count
                        WHERE c.count + excluded.count <= \(limit)
                    RETURNING count
                )
                SELECT EXISTS (SELECT 1 FROM up),
                       ceil(extract(epoch FROM (SELECT start FROM w) + make_interval(secs => \(window)) - now()))::int
                """, logger: logger)
            for try await (granted, seconds) in rows.decode((Bool, Int).self) {
                return granted ? .granted : .refused(retryAfterSeconds: max(1, seconds))
            }
            return .refused(retryAfterSeconds: untilNextWindow)
        }
    }
}
