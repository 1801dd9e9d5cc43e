import Foundation
import Logging
import NIOCore
import SMTPClient
import Synchronization

/// Keeps SMTP connections to MX hosts for reuse and bounds how many this node opens to one host.
///
/// A delivery checks out a connection for one (host, address); an idle one is reused (RSET is not needed:
/// a transaction that ended with the end-of-data reply leaves the session ready, RFC 5321 §4.1.4, and the
/// worker sends RSET itself after an aborted one). Idle connections close after `idleTimeout`, and each
/// connection closes after `maxMessagesPerConnection` transactions. Each open connection holds a cluster-wide
/// slot of its host (see `ClusterConnectionLimiter`), given back when the connection closes.
final class MXConnectionPool: Sendable {
    struct Key: Hashable, Sendable {
        var host: String
        var address: String
        /// "" for an MX host; a smarthost route's id, so that a connection authenticated for one route is never
        /// used for another (or for MX delivery).
        var route: String = ""
    }

    private struct Idle {
        var connection: SMTPConnection
        var since: ContinuousClock.Instant
        var uses: Int
    }

    private struct State {
        var idle: [Key: [Idle]] = [:]
        var hostLimits: [String: AsyncSemaphore] = [:]
        var clusterSlots: [ObjectIdentifier: ClusterConnectionLimiter.Slot] = [:]
        var closed = false
    }

    /// Outbound SMTP connections open now (in use or idle), for the `relay_smtp_sessions_active` gauge.
    private let openConnections = Atomic<Int>(0)
    private let state = Mutex(State())
    private let maxPerHost: Int
    private let idleTimeout: Duration
    private let maxUses: Int
    /// The cluster-wide connection bound (nil: only this node's per-host bound, unit tests).
    let clusterLimiter: ClusterConnectionLimiter?

    init(maxPerHost: Int, idleTimeout: Duration, maxUses: Int, clusterLimiter: ClusterConnectionLimiter? = nil) {
        self.clusterLimiter = clusterLimiter
        self.maxPerHost = maxPerHost
        self.idleTimeout = idleTimeout
        self.maxUses = maxUses
    }

    /// How many outbound connections are open.
    var openCount: Int { openConnections.load(ordering: .relaxed) }

    /// Records a newly opened connection and the cluster slot it holds (every one is closed through `close(_:)`).
    func opened(_ connection: SMTPConnection, slot: ClusterConnectionLimiter.Slot?) {
        openConnections.add(1, ordering: .relaxed)
        if let slot { state.withLock { $0.clusterSlots[ObjectIdentifier(connection)] = slot } }
    }

    /// Gives back a cluster slot taken for a connection that never opened.
    func release(_ slot: ClusterConnectionLimiter.Slot) async {
        await clusterLimiter?.release(slot)
    }

    /// Closes a connection (QUIT when idle), forgets it and gives its cluster slot back.
    func close(_ connection: SMTPConnection) async {
        await connection.close()
        openConnections.subtract(1, ordering: .relaxed)
        let slot = state.withLock { $0.clusterSlots.removeValue(forKey: ObjectIdentifier(connection)) }
        if let slot { await release(slot) }
    }

    /// The per-host limiter: a delivery holds one permit of its MX host while it uses a connection to it.
    func limiter(for host: String) -> AsyncSemaphore {
        state.withLock { state in
            if let existing = state.hostLimits[host] { return existing }
            let semaphore = AsyncSemaphore(permits: maxPerHost)
            state.hostLimits[host] = semaphore
            return semaphore
        }
    }

    /// A usable idle connection for the key, with how many transactions it has carried.
    func takeIdle(_ key: Key) -> (SMTPConnection, Int)? {
        let now = ContinuousClock.now
        var stale: [SMTPConnection] = []
        let found = state.withLock { state -> (SMTPConnection, Int)? in
            while var list = state.idle[key], let last = list.popLast() {
                state.idle[key] = list.isEmpty ? nil : list
                if last.connection.isUsable && now - last.since < idleTimeout {
                    return (last.connection, last.uses)
                }
                stale.append(last.connection)
            }
            return nil
        }
        if !stale.isEmpty { Task { for connection in stale { await self.close(connection) } } }
        return found
    }

    /// Returns a connection after use; it is closed instead when unusable, worn out, or the pool is closed.
    func giveBack(_ key: Key, _ connection: SMTPConnection, uses: Int) async {
        let keep = connection.isUsable && uses < maxUses && state.withLock { state -> Bool in
            if state.closed { return false }
            state.idle[key, default: []].append(Idle(connection: connection, since: .now, uses: uses))
            return true
        }
        if !keep { await close(connection) }
    }

    /// Closes idle connections older than the idle timeout; called periodically by the worker.
    func closeExpired() async {
        let now = ContinuousClock.now
        let expired = state.withLock { state -> [SMTPConnection] in
            var expired: [SMTPConnection] = []
            for (key, list) in state.idle {
                let (old, fresh) = (list.filter { now - $0.since >= idleTimeout }, list.filter { now - $0.since < idleTimeout })
                expired += old.map(\.connection)
                state.idle[key] = fresh.isEmpty ? nil : fresh
            }
            return expired
        }
        for connection in expired { await close(connection) }
    }

    /// Closes every idle connection and stops keeping new ones (shutdown).
    func closeAll() async {
        let all = state.withLock { state -> [SMTPConnection] in
            state.closed = true
            let all = state.idle.values.flatMap { $0.map(\.connection) }
            state.idle = [:]
            return all
        }
        for connection in all { await close(connection) }
    }
}
