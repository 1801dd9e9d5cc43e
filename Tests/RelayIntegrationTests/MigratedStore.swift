import Foundation
import RelayStore
import RelayTestSupport

/// Runs `body` with a store on a fresh, migrated database holding one tenant (`acme`), and its id.
func withMigratedStore(requestTimeout: Duration = .seconds(30), _ body: (RelayDatabase, UUID) async throws -> Void) async throws {
    let url = try await TestDatabase.create()
    let (database, task) = try TestDatabase.connect(url, requestTimeout: requestTimeout)
    defer { task.cancel() }
    try await Migrator(client: database.client, logger: .init(label: "test")).migrate()
    let (tenant, _) = try await database.createTenant(name: "acme")
    try await body(database, tenant.id)
}
