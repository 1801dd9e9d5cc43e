import Foundation
import RelayMigrations
import RelayStore
import RelayTestSupport
import Testing

@Suite struct MigrationTests {
    @Test func everySQLFileIsRegisteredInOrder() throws {
        let directory = repositoryRoot() + "/Migrations"
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files == allMigrations.map(\.name))
        // Strictly ascending, each number once (a number may be skipped: branches reserve theirs).
        let versions = allMigrations.map(\.version)
        #expect(versions == Array(Set(versions)).sorted())
        for migration in allMigrations {
            let onDisk = try String(contentsOfFile: directory + "/" + migration.name, encoding: .utf8)
            #expect(onDisk == migration.sql, "\(migration.name) differs from the embedded copy: rebuild")
        }
    }

    @Test func nodesMigratingTogetherApplyEachMigrationOnce() async throws {
        let url = try await TestDatabase.create(migrated: false)
        let stores = try (0..<4).map { _ in try TestDatabase.connect(url) }
        defer { stores.forEach { $0.1.cancel() } }
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for (database, _) in stores {
                group.addTask { try await Migrator(client: database.client, logger: .init(label: "m")).migrate() }
            }
            var all: [Int] = []
            for try await versions in group { all += versions }
            return all
        }
        #expect(applied.sorted() == allMigrations.map(\.version), "each migration applied exactly once")
        #expect(try await Migrator(client: stores[0].0.client, logger: .init(label: "m")).currentVersion() == Migrator.latestVersion)
    }

    @Test(arguments: [
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("-- a; comment\nSELECT ';';", ["-- a; comment\nSELECT ';'"]),
        ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql; SELECT 3", ["CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql", "SELECT 3"]),
        ("/* x; */ SELECT \"a;b\" FROM t;", ["/* x; */ SELECT \"a;b\" FROM t"]),
        ("-- only a comment\n", []),
    ])
    func scriptSplitting(sql: String, expected: [String]) {
        #expect(SQLScript.statements(in: sql) == expected)
    }
}
