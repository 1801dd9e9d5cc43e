import Foundation
import PostgresNIO
import RelayCore

extension RelayDatabase {
    /// Failed SMTP AUTH attempts from `ip` within `window`, counted across all nodes.
    public func recentAuthFailures(ip: String, window: Duration) async throws -> Int {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT count(*)::bigint FROM smtp_auth_failures
                WHERE ip = \(ip) AND at > now() - make_interval(secs => \(window.seconds))
                """, logger: logger)
            for try await count in rows.decode(Int.self) { return count }
            return 0
        }
    }

    /// Records a failed attempt and forgets this IP's attempts older than `window` (the table stays small).
    public func recordAuthFailure(ip: String, window: Duration) async throws {
        try await withDeadline { [self] in
            try await client.query("""
                WITH old AS (
                    DELETE FROM smtp_auth_failures
                    WHERE ip = \(ip) AND at < now() - make_interval(secs => \(window.seconds))
                )
                INSERT INTO smtp_auth_failures (ip) VALUES (\(ip))
                """, logger: logger)
        }
    }
}
