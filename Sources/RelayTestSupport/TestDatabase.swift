import Foundation
import Logging
import PostgresNIO
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

    /// Creates an empty database with a unique name and returns its URL.
    public static func create(prefix: String = "relay_test") async throws -> String {
        let admin = try DatabaseLocation(url: adminURL())
        let name = "\(prefix)_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
        let logger = Logger(label: "test-db")
        let connection = try await PostgresConnection.connect(
            configuration: .init(host: admin.host ?? "127.0.0.1", port: admin.port, username: admin.username,
                                 password: admin.password, database: admin.database, tls: .disable),
            id: 1, logger: logger)
        defer { Task { try? await connection.close() } }
        try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        var components = URLComponents(string: try adminURL())!
        components.path = "/\(name)"
        return components.string!
    }

    /// A running client for a database URL, with the store on top; call `shutdown` at the end.
    public static func connect(_ url: String) throws -> (RelayDatabase, Task<Void, Never>) {
        let location = try DatabaseLocation(url: url)
        let client = PostgresClient(configuration: location.clientConfiguration(maximumConnections: 30),
                                    backgroundLogger: Logger(label: "test-db"))
        let task = Task { await client.run() }
        return (RelayDatabase(client: client, logger: Logger(label: "test-db")), task)
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
