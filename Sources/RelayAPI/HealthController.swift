import Hummingbird
import RelayStore

/// `GET /healthz` (the process is up) and `GET /readyz` (migrations done, the database answers now, and the
/// node is not draining).
struct HealthController {
    let database: RelayDatabase
    let isReady: @Sendable () -> Bool
    let isDraining: @Sendable () -> Bool

    func register(on router: Router<RelayRequestContext>) {
        router.get("healthz") { _, _ in
            try JSONResponse.make(.ok, ["status": "ok"])
        }
        router.get("readyz") { _, context in
            guard !isDraining() else {
                throw APIError(.serviceUnavailable, code: "draining",
                               message: "this node is shutting down: it finishes its work and takes no new requests")
            }
            guard isReady() else {
                throw APIError(.serviceUnavailable, code: "not_ready",
                               message: "Relay is starting: the database is not reachable or not migrated yet")
            }
            do {
                let version = try await database.schemaVersion()
                guard version >= Migrator.latestVersion else {
                    throw APIError(.serviceUnavailable, code: "not_ready",
                                   message: "database schema is at version \(version), expected \(Migrator.latestVersion)")
                }
                return try JSONResponse.make(.ok, ["status": "ready"])
            } catch let error as APIError {
                throw error
            } catch {
                throw APIError(.serviceUnavailable, code: "not_ready", message: "the database is unreachable")
            }
        }
    }
}
