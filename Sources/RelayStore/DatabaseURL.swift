import Foundation
import PostgresNIO

/// Where the PostgreSQL server is: parsed from `DATABASE_URL` or given by the managed local server.
public struct DatabaseLocation: Sendable, Equatable {
    /// TCP host, or nil when `unixSocketPath` is used.
    public var host: String?
    /// TCP port.
    public var port: Int
    /// Path of the server's Unix-domain socket file (managed mode).
    public var unixSocketPath: String?
    /// Role to log in as.
    public var username: String
    /// Password, if any.
    public var password: String?
    /// Database name.
    public var database: String
    /// Whether to require TLS (`sslmode=require` or `verify-full` in the URL); otherwise TLS is not used.
    public var requireTLS: Bool

    /// Creates a location from parts.
    public init(host: String?, port: Int = 5432, unixSocketPath: String? = nil, username: String, password: String?, database: String, requireTLS: Bool = false) {
        self.host = host
        self.port = port
        self.unixSocketPath = unixSocketPath
        self.username = username
        self.password = password
        self.database = database
        self.requireTLS = requireTLS
    }

    /// Parses `postgres://user:pass@host:port/db?sslmode=…` (also `postgresql://`). Percent-escapes in user
    /// and password are decoded. Throws a message naming what is wrong.
    public init(url text: String) throws {
        guard let components = URLComponents(string: text),
              let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme.lowercased()) else {
            throw ConfigurationError("DATABASE_URL must look like postgres://user:password@host:5432/database")
        }
        guard let user = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !user.isEmpty else {
            throw ConfigurationError("DATABASE_URL has no user name")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty else { throw ConfigurationError("DATABASE_URL has no database name") }
        let sslMode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "disable"
        let hostQuery = components.queryItems?.first(where: { $0.name == "host" })?.value
        self.init(
            host: hostQuery == nil ? (components.host ?? "localhost") : nil,
            port: components.port ?? 5432,
            unixSocketPath: hostQuery.map { "\($0)/.s.PGSQL.\(components.port ?? 5432)" },
            username: user,
            password: components.percentEncodedPassword.flatMap { $0.removingPercentEncoding },
            database: database,
            requireTLS: ["require", "verify-ca", "verify-full"].contains(sslMode)
        )
    }

    /// The PostgresNIO client configuration for this location, with Relay's pool settings.
    public func clientConfiguration(maximumConnections: Int = 20) -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let unixSocketPath {
            configuration = .init(unixSocketPath: unixSocketPath, username: username, password: password, database: database)
        } else {
            configuration = .init(
                host: host ?? "localhost", port: port, username: username, password: password, database: database,
                tls: requireTLS ? .require(.makeClientConfiguration()) : .disable)
        }
        configuration.options.maximumConnections = maximumConnections
        configuration.options.minimumConnections = 0
        // Fail fast when the database is down so that the API answers 503 instead of hanging.
        configuration.options.connectTimeout = .seconds(3)
        // The pool starts a keep-alive and an idle timer (each a sleeping task) whenever a connection goes back to
        // it, and cancels them when the connection is taken again: one or two per query. The Swift runtime keeps
        // a cancelled sleep's memory until its deadline passes, so with the defaults (30 s, 60 s) a node at a few
        // thousand queries per second held hundreds of megabytes (docs/benchmarks.md, B6). No keep-alive (a dead
        // connection fails its next query and is replaced) and a 10 s idle timeout keep that to a few megabytes.
        configuration.options.keepAliveBehavior = nil
        configuration.options.connectionIdleTimeout = .seconds(10)
        return configuration
    }
}

/// A configuration value that cannot be used, with a sentence saying why.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    /// What is wrong and how to fix it.
    public var description: String
    /// Creates the error with its message.
    public init(_ description: String) { self.description = description }
}
