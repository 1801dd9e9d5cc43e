import Foundation
import Logging
import RelayStore
import ServiceLifecycle

/// Keeps this node's row in `nodes` fresh: a heartbeat every `interval` (re-registering after a database
/// outage), and `draining` as soon as a graceful shutdown starts. A node that stopped, or died, drops out of
/// `GET /admin/nodes` when its heartbeat is older than `liveWindow`; its row is deleted after a day.
struct NodeRegistryService: Service {
    /// Heartbeat period.
    static let interval: Duration = .seconds(5)
    /// A node is live while its last heartbeat is younger than this (three missed heartbeats, and some).
    static let liveWindow: Duration = .seconds(20)

    let database: RelayDatabase
    let nodeID: UUID
    let hostname: String
    let roles: [String]
    let version: String
    let logger: Logger

    func run() async throws {
        // Registered last, so the first service told about a shutdown: the draining mark is written while the
        // other services still drain.
        do {
            while true {
                await beat(draining: false)
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
            }
        } catch {
            guard Task.isShuttingDownGracefully else { return }
        }
        await beat(draining: true)
    }

    private func beat(draining: Bool) async {
        do {
            try await database.heartbeat(nodeID: nodeID, hostname: hostname, roles: roles, version: version, draining: draining)
        } catch {
            logger.debug("node heartbeat failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}

/// This build's version, reported by each node in `nodes` and `GET /admin/nodes`.
public enum RelayVersion {
    public static let current = "0.6.0"
}
