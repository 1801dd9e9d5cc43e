import Foundation
import RelayCore
import Logging
import RelayStore

/// Runs a private PostgreSQL server for Relay when no `DATABASE_URL` is given: `initdb` on first start, then
/// `pg_ctl start` with a Unix-domain socket in the data directory and no TCP listener, so it never clashes
/// with another server on the machine. PostgreSQL refuses to run as root; when Relay runs as root the server
/// runs as the `postgres` user (via `runuser`) and owns its directory.
public struct ManagedPostgres: Sendable {
    /// `RELAY_DATA_DIR`, made absolute.
    public let dataDirectory: String
    let logger: Logger

    var clusterDirectory: String { dataDirectory + "/postgres" }
    var socketDirectory: String { dataDirectory + "/run" }
    var logFile: String { dataDirectory + "/postgres.log" }
    static let port = 5432
    static let user = "relay"
    static let database = "postgres"

    /// Prepares to manage a server under `dataDirectory`.
    public init(dataDirectory: String, logger: Logger) {
        let absolute = dataDirectory.hasPrefix("/")
            ? dataDirectory
            : FileManager.default.currentDirectoryPath + "/" + dataDirectory
        self.dataDirectory = URL(fileURLWithPath: absolute).standardizedFileURL.path
        self.logger = logger
    }

    /// Where to connect once `start()` returned.
    public var location: DatabaseLocation {
        DatabaseLocation(host: nil, port: Self.port, unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(Self.port)",
                         username: Self.user, password: nil, database: Self.database)
    }

    /// Initialises the cluster if needed and starts the server unless it already runs (for example after
    /// Relay was killed: the server outlives it and is reused). Returns whether this call started it.
    @discardableResult
    public func start() throws -> Bool {
        let fm = FileManager.default
        try fm.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        let runAsPostgres = geteuid() == 0
        if runAsPostgres {
            try run("/bin/chown", ["-R", "postgres:postgres", dataDirectory])
        }
        if !fm.fileExists(atPath: clusterDirectory + "/PG_VERSION") {
            logger.info("initialising a local PostgreSQL cluster", metadata: ["directory": "\(clusterDirectory)"])
            if runAsPostgres { try run("/bin/chown", ["postgres:postgres", dataDirectory]) }
            try pg("initdb", ["-D", clusterDirectory, "-U", Self.user, "--auth=trust", "-E", "UTF8", "--locale=C"],
                   asPostgres: runAsPostgres)
            let settings = """

                # Added by Relay (managed mode): Unix socket only, in Relay's data directory.
                listen_addresses = ''
                unix_socket_directories = '\(socketDirectory)'
                max_connections = 200
                shared_buffers = 256MB
                """
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: clusterDirectory + "/postgresql.conf"))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(settings.utf8))
            try handle.close()
        }
        if try pgStatus(asPostgres: runAsPostgres) {
            logger.info("reusing the running local PostgreSQL", metadata: ["directory": "\(clusterDirectory)"])
            return false
        }
        logger.info("starting the local PostgreSQL", metadata: ["directory": "\(clusterDirectory)"])
        try pg("pg_ctl", ["start", "-w", "-t", "60", "-D", clusterDirectory, "-l", logFile], asPostgres: runAsPostgres)
        return true
    }

    /// Stops the server (fast shutdown: running transactions are rolled back, committed data is safe).
    public func stop() {
        do {
            try pg("pg_ctl", ["stop", "-w", "-m", "fast", "-D", clusterDirectory], asPostgres: geteuid() == 0)
            logger.info("stopped the local PostgreSQL")
        } catch {
            logger.warning("stopping the local PostgreSQL failed", metadata: ["error": "\(error)"])
        }
    }

    private func pgStatus(asPostgres: Bool) throws -> Bool {
        // pg_ctl status: exit 0 = running, 3 = not running, 4 = no cluster.
        let status = try execute(Self.binary("pg_ctl"), ["status", "-D", clusterDirectory], asPostgres: asPostgres)
        return status.code == 0
    }

    private func pg(_ tool: String, _ arguments: [String], asPostgres: Bool) throws {
        let result = try execute(Self.binary(tool), arguments, asPostgres: asPostgres)
        guard result.code == 0 else {
            throw ConfigurationError("\(tool) failed (exit \(result.code)): \(result.output.suffix(2000))")
        }
    }

    private func run(_ path: String, _ arguments: [String]) throws {
        let result = try execute(path, arguments, asPostgres: false)
        guard result.code == 0 else {
            throw ConfigurationError("\(path) \(arguments.joined(separator: " ")) failed: \(result.output)")
        }
    }

    /// Runs a program to completion with its output captured in a file. Uses posix_spawn and waitpid
    /// directly: Foundation's `Process.waitUntilExit` was seen to hang here when the child (pg_ctl) leaves a
    /// daemon behind.
    private func execute(_ path: String, _ arguments: [String], asPostgres: Bool) throws -> (code: Int32, output: String) {
        let argv = asPostgres ? ["/usr/sbin/runuser", "-u", "postgres", "--", path] + arguments : [path] + arguments
        let outputPath = dataDirectory + "/.command-output-\(getpid())"
        defer { unlink(outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // The server that pg_ctl starts must not inherit Relay's descriptors (NIO's sockets are not close-on-exec):
        // it would keep Relay's listening ports and connections open after Relay exits.
        SpawnActions.closeInheritedDescriptors(&actions)
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArguments, environ)
        guard spawned == 0 else {
            throw ConfigurationError("could not start \(argv[0]): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED/WEXITSTATUS are macros; decode the status word by hand.
        let exitCode: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return (exitCode, output)
    }

    /// Finds a PostgreSQL program on PATH or in Debian's versioned directories.
    static func binary(_ name: String) throws -> String {
        let fm = FileManager.default
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where fm.isExecutableFile(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
        if let versions = try? fm.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) })
            where fm.isExecutableFile(atPath: "/usr/lib/postgresql/\(version)/bin/\(name)") {
                return "/usr/lib/postgresql/\(version)/bin/\(name)"
            }
        }
        throw ConfigurationError("\(name) was not found: install PostgreSQL (apt-get install postgresql) or set DATABASE_URL")
    }
}
