import Foundation
import PostgresNIO

/// A Relay node as the cluster sees it.
public struct NodeRecord: Sendable {
    public var id: UUID
    public var hostname: String
    public var roles: [String]
    public var version: String
    public var startedAt: Date
    public var heartbeatAt: Date
    /// Shutting down: finishing its deliveries and sessions, taking no new work.
    public var draining: Bool
}

extension RelayDatabase {
    /// Registers (or re-registers after a database outage) this node and stamps its heartbeat; rows of nodes
    /// silent for a day go at the same time.
    public func heartbeat(nodeID: UUID, hostname: String, roles: [String], version: String, draining: Bool) async throws {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                WITH gone AS (DELETE FROM nodes WHERE heartbeat_at < now() - interval '1 day' AND id <> \(nodeID))
                INSERT INTO nodes (id, hostname, roles, version, draining) VALUES (\(nodeID), \(hostname), \(roles), \(version), \(draining))
                ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), draining = excluded.draining
                """, logger: logger)
            for try await _ in rows {}
        }
    }

    /// Nodes whose heartbeat is more recent than `within`, oldest first.
    public func liveNodes(within: Duration) async throws -> [NodeRecord] {
        let seconds = Double(within.components.seconds)
        return try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT id, hostname, roles, version, started_at, heartbeat_at, draining FROM nodes
                WHERE heartbeat_at > now() - make_interval(secs => \(seconds)) ORDER BY started_at, id
                """, logger: logger)
            var nodes: [NodeRecord] = []
            for try await (id, hostname, roles, version, started, heartbeat, draining) in rows.decode(
                (UUID, String, [String], String, Date, Date, Bool).self) {
                nodes.append(NodeRecord(id: id, hostname: hostname, roles: roles, version: version, startedAt: started,
                                        heartbeatAt: heartbeat, draining: draining))
            }
            return nodes
        }
    }
}
