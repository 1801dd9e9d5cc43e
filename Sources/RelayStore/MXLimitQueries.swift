import Foundation
import PostgresNIO

/// What an attempt to take a connection slot of an MX host found.
public struct MXSlotGrant: Sendable, Equatable {
    /// The slot taken; nil when every slot below the limit is held.
    public var slot: Int?
    /// The host's connection limit right now (the configured one, or lower while the host is throttled).
    public var limit: Int

    public init(slot: Int?, limit: Int) {
        self.slot = slot
        self.limit = limit
    }
}

/// An MX host that asked Relay to slow down, or has connections open now.
public struct MXHostStatus: Sendable {
    public var host: String
    /// Connections open to it across the cluster (slots held under a live lease).
    public var connections: Int
    /// The lowered limit while throttled; nil when not throttled.
    public var throttledLimit: Int?
    public var throttledUntil: Date?
    /// The reply that caused the throttle.
    public var reply: String?
}

extension RelayDatabase {
    /// Takes a free connection slot of `host` for `nodeID`, cluster-wide: a slot number below the host's limit
    /// that no live lease holds. The (host, slot) key makes two nodes unable to take one slot; an expired row
    /// (its node died) is taken over by the conditional upsert. A random free slot keeps concurrent takers
    /// from colliding on the lowest one. After a throttle lowered the limit, slots numbered above it may still
    /// be held, so the live count must also be below the limit (racy only in that transition: connections
    /// opened at the same moment may overshoot the lowered limit until one closes).
    public func takeMXSlot(host: String, nodeID: UUID, limit: Int, lease: Duration) async throws -> MXSlotGrant {
        let seconds = Double(lease.components.seconds)
        return try await withDeadline { [self] in
            let rows = try await client.query("""
                WITH lim AS (
                    SELECT LEAST(\(limit), COALESCE(
                        (SELECT connection_limit FROM mx_throttles WHERE host = \(host) AND until > now()), \(limit))) AS n
                ), free AS (
                    SELECT s FROM generate_series(0, (SELECT n FROM lim) - 1) s
                    WHERE NOT EXISTS (SELECT 1 FROM mx_connection_slots m
                                      WHERE m.host = \(host) AND m.slot = s AND m.expires_at > now())
                      AND (SELECT count(*) FROM mx_connection_slots m
                           WHERE m.host = \(host) AND m.expires_at > now()) < (SELECT n FROM lim)
                    ORDER BY random() LIMIT 1
                ), taken AS (
                    INSERT INTO mx_connection_slots AS m (host, slot, node_id, expires_at)
                    SELECT \(host), s, \(nodeID), now() + make_interval(secs => \(seconds)) FROM free
                    ON CONFLICT (host, slot) DO UPDATE SET node_id = excluded.node_id, expires_at = excluded.expires_at
                        WHERE m.expires_at <= now()
                    RETURNING slot
                )
                SELECT (SELECT slot FROM taken), (SELECT n FROM lim)
                """, logger: logger)
            for try await (slot, limit) in rows.decode((Int?, Int).self) {
                return MXSlotGrant(slot: slot, limit: limit)
            }
            return MXSlotGrant(slot: nil, limit: limit)
        }
    }

    /// Gives a slot back when its connection closes.
    public func releaseMXSlot(host: String, slot: Int, nodeID: UUID) async throws {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                DELETE FROM mx_connection_slots WHERE host = \(host) AND slot = \(slot) AND node_id = \(nodeID)
                """, logger: logger)
            for try await _ in rows {}
        }
    }

    /// Extends the leases of every slot `nodeID` holds (its connections are still open); rows whose lease ran
    /// out a while ago (their node died) are deleted on the way.
    public func renewMXSlots(nodeID: UUID, lease: Duration) async throws {
        let seconds = Double(lease.components.seconds)
        try await withDeadline { [self] in
            let rows = try await client.query("""
                WITH stale AS (DELETE FROM mx_connection_slots WHERE expires_at < now() - interval '1 minute')
                UPDATE mx_connection_slots SET expires_at = now() + make_interval(secs => \(seconds))
                WHERE node_id = \(nodeID)
                """, logger: logger)
            for try await _ in rows {}
        }
    }

    /// Lowers `host`'s connection limit for `duration` after it answered with a throttling reply: to half the
    /// connections the cluster has open to it (at least 1, at most half the current limit). Replies arriving
    /// within 10 s of the last lowering count as the same signal (connections that were already open all hear
    /// the same complaint), so they only extend the period. Returns the new limit.
    @discardableResult
    public func throttleMX(host: String, configuredLimit: Int, duration: Duration, reply: String) async throws -> Int {
        let seconds = Double(duration.components.seconds)
        return try await withDeadline { [self] in
            let rows = try await client.query("""
                WITH open AS (
                    SELECT count(*)::int AS n FROM mx_connection_slots WHERE host = \(host) AND expires_at > now()
                )
                INSERT INTO mx_throttles AS t (host, connection_limit, until, reply)
                SELECT \(host), GREATEST(1, LEAST(\(configuredLimit), n) / 2), now() + make_interval(secs => \(seconds)),
                       \(reply) FROM open
                ON CONFLICT (host) DO UPDATE SET
                    connection_limit = CASE
                        WHEN t.until <= now() THEN excluded.connection_limit
                        WHEN t.updated_at > now() - interval '10 seconds' THEN t.connection_limit
                        ELSE GREATEST(1, LEAST(t.connection_limit, (SELECT n FROM open)) / 2) END,
                    updated_at = CASE
                        WHEN t.until > now() AND t.updated_at > now() - interval '10 seconds' THEN t.updated_at
                        ELSE now() END,
                    until = excluded.until,
                    reply = excluded.reply
                RETURNING connection_limit
                """, logger: logger)
            for try await limit in rows.decode(Int.self) { return limit }
            return 1
        }
    }

    /// Lifts a host's throttle at once; false when it was not throttled.
    public func liftMXThrottle(host: String) async throws -> Bool {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                DELETE FROM mx_throttles WHERE host = \(host) AND until > now() RETURNING host
                """, logger: logger)
            var found = false
            for try await _ in rows.decode(String.self) { found = true }
            return found
        }
    }

    /// Hosts with connections open now or a throttle in force, busiest first.
    public func mxHostStatuses() async throws -> [MXHostStatus] {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                WITH open AS (
                    SELECT host, count(*)::int AS n FROM mx_connection_slots WHERE expires_at > now() GROUP BY host
                ), throttled AS (
                    SELECT host, connection_limit, until, reply FROM mx_throttles WHERE until > now()
                )
                SELECT COALESCE(o.host, t.host), COALESCE(o.n, 0), t.connection_limit, t.until, t.reply
                FROM open o FULL JOIN throttled t ON t.host = o.host
                ORDER BY 2 DESC, 1
                """, logger: logger)
            var hosts: [MXHostStatus] = []
            for try await (host, connections, limit, until, reply) in rows.decode((String, Int, Int?, Date?, String?).self) {
                hosts.append(MXHostStatus(host: host, connections: connections, throttledLimit: limit,
                                          throttledUntil: until, reply: reply))
            }
            return hosts
        }
    }
}
