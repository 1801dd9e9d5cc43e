import Crypto
import Foundation
import Logging
import PostgresNIO
import RelayMigrations
import RelayStore

/// A fresh database per test on the throwaway PostgreSQL that `scripts/test` starts
/// (`RELAY_TEST_DATABASE_URL` points at its maintenance database).
public enum TestDatabase {
    /// The URL of the test server's maintenance database.
    public static func adminURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["RELAY_TEST_DATABASE_URL"], !url.isEmpty else {
            throw TestSupportError("RELAY_TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts a throwaway PostgreSQL")
        }
        return url
    }

    /// Creates a database with a unique name and returns its URL. By default it is a copy of a database on which
    /// every migration has been applied (made once per schema and server, see `migratedTemplate`): when the whole
    /// suite starts, about a hundred Relays would otherwise run every migration at once on two cores, and their
    /// starts took over 30 s. `migrated: false` gives an empty database (for tests of the migrations themselves).
    /// A copy shares the template's generated secrets (VERP, unsubscribe, DKIM sealing keys), which no test
    /// compares across databases.
    public static func create(prefix: String = "relay_test", migrated: Bool = true) async throws -> String {
        let name = "\(prefix)_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
        let template = migrated ? try await TemplateCache.shared.name() : nil
        try await withAdminConnection { connection, logger in
            let sql = template.map { "CREATE DATABASE \(name) TEMPLATE \($0)" } ?? "CREATE DATABASE \(name)"
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        }
        return try url(of: name)
    }

    /// The URL of a database on the test server.
    static func url(of name: String) throws -> String {
        var components = URLComponents(string: try adminURL())!
        components.path = "/\(name)"
        return components.string!
    }

    /// Runs `body` on a connection to the maintenance database.
    static func withAdminConnection<T: Sendable>(_ body: (PostgresConnection, Logger) async throws -> T) async throws -> T {
        let admin = try DatabaseLocation(url: adminURL())
        let logger = Logger(label: "test-db")
        let connection = try await PostgresConnection.connect(
            configuration: .init(host: admin.host ?? "127.0.0.1", port: admin.port, username: admin.username,
                                 password: admin.password, database: admin.database, tls: .disable),
            id: 1, logger: logger)
        do {
            let result = try await body(connection, logger)
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Makes the migrated template once per process: named after a hash of the migrations, so every process of
    /// one build shares it and a changed migration gets a new one; built under an advisory lock and renamed into
    /// place only when complete, so a concurrent process never copies a half-migrated template.
    actor TemplateCache {
        static let shared = TemplateCache()
        private var made: Task<String, any Error>?

        func name() async throws -> String {
            if let made { return try await made.value }
            let task = Task { try await TestDatabase.makeTemplate() }
            made = task
            return try await task.value
        }
    }

    static func makeTemplate() async throws -> String {
        let digest = Array(SHA256.hash(data: Array(allMigrations.map(\.sql).joined(separator: "\u{0}").utf8)))
        let hash = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let name = "relay_template_\(String(hash, radix: 16))"
        let building = name + "_building"
        let lock = Int64(bitPattern: hash)
        try await withAdminConnection { connection, logger in
            // Held until this connection closes.
            try await connection.query("SELECT pg_advisory_lock(\(lock))", logger: logger)
            let rows = try await connection.query("SELECT count(*)::int FROM pg_database WHERE datname = \(name)", logger: logger)
            var exists = false
            for try await count in rows.decode(Int.self) { exists = count > 0 }
            if exists { return }
            try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(building) WITH (FORCE)"), logger: logger)
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(building)"), logger: logger)
            let (database, task) = try connect(try url(of: building))
            do {
                try await Migrator(client: database.client, logger: logger).migrate()
            } catch {
                task.cancel()
                throw error
            }
            task.cancel()
            // No session may stay in a database that is renamed or copied.
            try await connection.query(PostgresQuery(unsafeSQL: "ALTER DATABASE \(building) WITH ALLOW_CONNECTIONS false"), logger: logger)
            try await connection.query("""
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = \(building) AND pid <> pg_backend_pid()
                """, logger: logger)
            try await connection.query(PostgresQuery(unsafeSQL: "ALTER DATABASE \(building) RENAME TO \(name)"), logger: logger)
        }
        return name
    }

    /// A running client for a database URL, with the store on top; call `shutdown` at the end.
    /// The deadline is long (production's is 5 s): tests check outcomes, not latency, and while the integration
    /// tier's suites all start at once on two cores a connection has taken over 3 s to open (CI saw idempotency
    /// tests fail on a 5 s deadline). Tests about deadlines pass their own.
    public static func connect(_ url: String, requestTimeout: Duration = .seconds(30)) throws -> (RelayDatabase, Task<Void, Never>) {
        let location = try DatabaseLocation(url: url)
        let client = PostgresClient(configuration: location.clientConfiguration(maximumConnections: 30),
                                    backgroundLogger: Logger(label: "test-db"))
        let task = Task { await client.run() }
        return (RelayDatabase(client: client, logger: Logger(label: "test-db"), requestTimeout: requestTimeout), task)
    }
}

/// A failure of the test environment, with a sentence saying how to fix it.
public struct TestSupportError: Error, CustomStringConvertible {
    /// What is wrong.
    public var description: String
    /// Creates the error.
    public init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds or `timeout` passes; throws naming `what` on timeout.
public func waitUntil(_ what: String, timeout: Duration = .seconds(30), interval: Duration = .milliseconds(50),
                      _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    throw TestSupportError("timed out after \(timeout) waiting until \(what)")
}

/// A fresh test database reached through a TCP proxy, so a test can take the database away (`stop()` the
/// proxy) and bring it back (`startProxy()` again) while Relay keeps running.
public struct ProxiedTestDatabase: Sendable {
    /// The database URL through the proxy (give this to Relay).
    public let url: String
    let proxyPort: Int
    let target: DatabaseLocation

    /// Creates the database; the proxy is not running until `startProxy()`.
    public static func create() async throws -> ProxiedTestDatabase {
        let admin = try DatabaseLocation(url: TestDatabase.adminURL())
        var url = URLComponents(string: try await TestDatabase.create())!
        let proxyPort = try freePort()
        url.host = "127.0.0.1"
        url.port = proxyPort
        return ProxiedTestDatabase(url: url.string!, proxyPort: proxyPort, target: admin)
    }

    /// Starts (or restarts) the proxy; stop the returned process to make the database unreachable.
    public func startProxy() async throws -> ChildProcess {
        try await startTCPProxy(listenPort: proxyPort, targetHost: target.host ?? "127.0.0.1", targetPort: target.port)
    }
}
