import Foundation
import Logging
import NIOPosix
import PostgresNIO
import DKIM
import RelayStore
import ServiceLifecycle

/// What the `relay` subcommands do, kept here so the executable stays a thin argument parser.
public enum RelayRunner {
    /// `relay serve`: starts the managed PostgreSQL when there is no `DATABASE_URL`, then runs until SIGTERM/SIGINT,
    /// then stops the managed PostgreSQL again.
    public static func serve(_ configuration: RelayConfiguration) async throws {
        var configuration = configuration
        let logger = bootstrapLogging(configuration.logLevel, format: configuration.logFormat)
        let (location, managed) = try startDatabase(configuration, logger: logger)
        if managed != nil && configuration.secretKey == nil {
            configuration.secretKey = try managedSecretKey(dataDirectory: configuration.dataDirectory)
        }
        logger.info("relay starting", metadata: [
            "http": "\(configuration.httpHost):\(configuration.httpPort)", "hostname": "\(configuration.hostname)",
            "database": "\(managed == nil ? "DATABASE_URL" : "managed in \(managed!.dataDirectory)")"])
        do {
            let drain = DrainSignal()
            let app = try buildApplication(configuration: configuration, database: location, logger: logger, drain: drain)
            // The announcer comes after the application, so a SIGTERM reaches it first (see DrainAnnouncer).
            let drainDelay = configuration.drainDelay ?? (managed == nil ? .seconds(5) : .zero)
            let group = ServiceGroup(configuration: .init(
                services: [app, DrainAnnouncer(signal: drain, delay: drainDelay, logger: logger)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch {
            managed?.stop()
            throw error
        }
        managed?.stop()
        logger.info("relay stopped")
    }

    /// The managed local mode's RELAY_SECRET_KEY: `<data dir>/secret.key` (mode 0600), generated on first use.
    static func managedSecretKey(dataDirectory: String) throws -> String {
        let path = (dataDirectory as NSString).appendingPathComponent("secret.key")
        if let existing = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
           !existing.isEmpty {
            return existing
        }
        let key = SecretKeyBox.generateKeyBase64()
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: Data((key + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ConfigurationError("cannot write \(path)")
        }
        return key
    }

    /// `relay migrate`.
    public static func migrate(_ configuration: RelayConfiguration) async throws {
        let logger = bootstrapLogging(configuration.logLevel, format: configuration.logFormat)
        try await withDatabase(configuration, logger: logger) { database in
            let applied = try await Migrator(client: database.client, logger: logger).migrate()
            print(applied.isEmpty ? "The schema is up to date." : "Applied migrations: \(applied.map(String.init).joined(separator: ", ")).")
        }
    }

    /// `relay tenant create`.
    public static func createTenant(name: String, configuration: RelayConfiguration) async throws
        -> (id: String, name: String, apiKey: String) {
        let logger = bootstrapLogging(max(configuration.logLevel, .warning), format: configuration.logFormat)
        return try await withDatabase(configuration, logger: logger) { database in
            try await Migrator(client: database.client, logger: logger).migrate()
            let (tenant, key) = try await database.createTenant(name: name)
            return (tenant.id.uuidString.lowercased(), tenant.name, key)
        }
    }

    private static func startDatabase(_ configuration: RelayConfiguration, logger: Logger) throws -> (DatabaseLocation, ManagedPostgres?) {
        if let url = configuration.databaseURL {
            return (try DatabaseLocation(url: url), nil)
        }
        let managed = ManagedPostgres(dataDirectory: configuration.dataDirectory, logger: logger)
        try managed.start()
        return (managed.location, managed)
    }

    /// Runs `body` with a connected store; a managed PostgreSQL started for it is stopped afterwards
    /// (one that was already running, e.g. under `relay serve`, is left running).
    static func withDatabase<T: Sendable>(_ configuration: RelayConfiguration, logger: Logger, maximumConnections: Int = 2,
                                          _ body: @escaping @Sendable (RelayDatabase) async throws -> T) async throws -> T {
        var managed: ManagedPostgres?
        var startedHere = false
        let location: DatabaseLocation
        if let url = configuration.databaseURL {
            location = try DatabaseLocation(url: url)
        } else {
            let server = ManagedPostgres(dataDirectory: configuration.dataDirectory, logger: logger)
            startedHere = try server.start()
            managed = server
            location = server.location
        }
        defer { if startedHere { managed?.stop() } }
        // The one-shot commands start the pool and use it at once; PostgresNIO warns about that race, harmlessly.
        var clientLogger = logger
        clientLogger.logLevel = max(logger.logLevel, .error)
        let client = PostgresClient(configuration: location.clientConfiguration(maximumConnections: maximumConnections),
                                    backgroundLogger: clientLogger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            let result = try await body(RelayDatabase(client: client, logger: logger))
            return result
        }
    }

    /// Logs to standard error in a plain key=value form, at the configured level.
    static func bootstrapLogging(_ level: Logger.Level, format: RelayConfiguration.LogFormat) -> Logger {
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
        var logger = Logger(label: "relay")
        logger.logLevel = level
        return logger
    }
}

extension RelayRunner {
    /// `relay queue retry|cancel`: applies `operation` to the pending recipients of `selection` (every tenant's
    /// when it names none), or with `dryRun` only counts them; returns the count. The same store functions as
    /// `POST /v1/queue/retry|cancel`.
    public static func queueOperation(_ operation: QueueOperation, selection: QueueSelection, dryRun: Bool,
                                      configuration: RelayConfiguration) async throws -> Int {
        let logger = bootstrapLogging(max(configuration.logLevel, .warning), format: configuration.logFormat)
        return try await withDatabase(configuration, logger: logger) { database in
            // An operator's run may select far more than a request does: each batch gets a minute.
            let store = RelayDatabase(client: database.client, logger: logger, requestTimeout: .seconds(60))
            return dryRun
                ? try await store.countOperable(selection)
                : try await store.apply(operation, to: selection, detail: "canceled by an operator (relay queue cancel)")
        }
    }
}
