import Foundation
import Logging
import PostgresNIO
import RelayStore

extension RelayRunner {
    /// `relay dev seed`: migrates, creates the tenant `tenantName` unless one of that name exists (printing its
    /// API key), registers the sender domain `seed.example`, then fills the delivery log with `messages`
    /// realistic messages over the last `days` days (see `RelayDatabase.seed`) and prints a one-line summary.
    /// Nothing is sent: seeded mail never becomes due before it expires.
    public static func seed(messages: Int, tenantName: String, days: Int, seed: Int64,
                            configuration: RelayConfiguration) async throws {
        let logger = bootstrapLogging(max(configuration.logLevel, .warning), format: configuration.logFormat)
        try await withDatabase(configuration, logger: logger, maximumConnections: 3) { database in
            try await Migrator(client: database.client, logger: logger).migrate()
            let tenantID: UUID
            if let existing = try await database.tenantID(named: tenantName) {
                tenantID = existing
                print("Using tenant \(tenantName) (id \(existing.uuidString.lowercased())).")
            } else {
                let (tenant, apiKey) = try await database.createTenant(name: tenantName)
                tenantID = tenant.id
                print("Tenant \(tenant.name) created (id \(tenant.id.uuidString.lowercased())).")
                print("API key (shown once, store it now): \(apiKey)")
            }
            fflush(nil)  // the API key before the progress lines on standard error
            try await database.ensureDomain(tenantID: tenantID, name: "seed.example")
            let clock = ContinuousClock()
            let start = clock.now
            let counts = try await database.seed(tenantID: tenantID, messages: messages, days: days, seed: seed) { total in
                let seconds = Self.seconds(clock.now - start)
                let line = "  \(total.messages)/\(messages) messages, \(total.events) events "
                    + "(\(Int(Double(total.messages) / max(seconds, 0.001))) messages/s)\n"
                FileHandle.standardError.write(Data(line.utf8))
            }
            let seconds = Self.seconds(clock.now - start)
            print("seeded \(counts.messages) messages, \(counts.recipients) recipients, \(counts.events) events, "
                  + "\(counts.attempts) attempts in \(String(format: "%.1f", seconds)) s")
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
