import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// Relay's PostgreSQL access: one pooled client, and the queries of each concern in its own extension file
/// (tenants, domains, messages, queue). All SQL lives in this module.
public final class RelayDatabase: Sendable {
    /// The pooled client; run it as a `Service` in the application's service group.
    public let client: PostgresClient
    let logger: Logger

    /// How long a request-path operation may wait for the database before it counts as unavailable
    /// (PostgresNIO's pool waits for a connection indefinitely while the server is down).
    public let requestTimeout: Duration

    /// Store operations running now (each holds at most one pooled connection at a time), for the
    /// `relay_db_connections{state="in_use"}` gauge.
    public var operationsInFlight: Int { inFlight.load(ordering: .relaxed) }
    private let inFlight = Atomic<Int>(0)

    /// Single-message accepts, committed in groups (`enqueue`).
    let enqueueGroup: EnqueueGroup

    /// Wraps a client. The client must be running (its `run()` called) before any query.
    public init(client: PostgresClient, logger: Logger, requestTimeout: Duration = .seconds(5)) {
        self.client = client
        self.logger = logger
        self.requestTimeout = requestTimeout
        // The writers call back into this database, weakly: the group must not keep it alive.
        let reference = WeakDatabaseReference()
        enqueueGroup = EnqueueGroup { messages in
            guard let database = reference.database else { throw CancellationError() }
            try await database.insertGroup(messages)
        }
        reference.database = self
    }

    /// Runs a request-path operation with `requestTimeout` (or `timeout`); on expiry the operation is cancelled
    /// and `StoreError.unavailable` is thrown, so the API answers 503 instead of hanging. Background jobs use it
    /// too: a call left waiting for a connection while the database is down keeps the pool retrying with a
    /// growing backoff, which would delay the recovery of everything else.
    ///
    /// The deadline holds even when the operation ignores its cancellation: the chaos suite saw calls that were
    /// in flight when PostgreSQL stopped never return after it came back. So the operation runs in its own task
    /// and the caller is answered by whichever comes first, the operation or the deadline; a late operation is
    /// cancelled and left to finish on its own.
    func withDeadline<T: Sendable>(_ timeout: Duration? = nil, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let timeout = timeout ?? requestTimeout
        inFlight.add(1, ordering: .relaxed)
        defer { inFlight.subtract(1, ordering: .relaxed) }
        let race = DeadlineRace<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                race.start(continuation)
                let work = Task {
                    do { race.finish(.success(try await operation())) } catch { race.finish(.failure(error)) }
                }
                // A timer on an event loop, not a sleeping task: no second task and no Dispatch timer per call
                // (docs/benchmarks.md).
                let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .milliseconds(timeout.milliseconds)) {
                    race.finish(.failure(StoreError(code: .unavailable, description: "the database did not answer within \(timeout)")))
                }
                race.onFinish { work.cancel(); timer.cancel() }
            }
        } onCancel: {
            race.finish(.failure(CancellationError()))
        }
    }

    /// The applied schema version, within the request deadline (for /readyz).
    public func schemaVersion() async throws -> Int {
        try await withDeadline { [self] in
            try await Migrator(client: client, logger: logger).currentVersion()
        }
    }

    /// SHA-256 of an API key, as stored in `api_keys.key_hash`.
    public static func hashAPIKey(_ key: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(key.utf8)))
    }
}

/// Set once, in `RelayDatabase.init`, before any reader exists; read-only afterwards.
private final class WeakDatabaseReference: @unchecked Sendable {
    weak var database: RelayDatabase?
}

/// Errors of the store that callers act on.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, extensible without breaking callers.
    public struct Code: Sendable, Hashable {
        let raw: String
        /// A row with the same key exists already.
        public static let conflict = Code(raw: "conflict")
        /// The database did not answer in time.
        public static let unavailable = Code(raw: "unavailable")
        /// A row the schema guarantees is not there (a damaged database).
        public static let missing = Code(raw: "missing")
    }
    /// The kind of failure.
    public var code: Code
    /// A sentence for logs.
    public var description: String
}

extension Error {
    /// Whether this error means "the database cannot be reached right now" (so the API answers 503 and the
    /// queue retries) rather than a bug or a constraint violation.
    public var isDatabaseUnavailable: Bool {
        if let error = self as? StoreError { return error.code == .unavailable }
        // `withTransaction` wraps what failed inside it (BEGIN, the body, COMMIT).
        if let error = self as? PostgresTransactionError {
            return [error.beginError, error.closureError, error.commitError].contains { $0?.isDatabaseUnavailable == true }
        }
        if let error = self as? PSQLError {
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown,
                 .queryCancelled:
                return true
            case .server:
                // Class 08: connection exception; 57P01-57P03: admin/crash shutdown, cannot connect now;
                // 53300: too many connections.
                let state = error.serverInfo?[.sqlState] ?? ""
                return state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300"
            default:
                return false
            }
        }
        if self is ChannelError || self is IOError { return true }
        if let error = self as? PostgresError, case .connectionClosed = error { return true }
        return false
    }

    /// Whether this is a serialization failure or deadlock that should simply be retried (SQLSTATE 40001, 40P01).
    public var isRetryableTransactionConflict: Bool {
        guard let error = self as? PSQLError, error.code == .server else { return false }
        let state = error.serverInfo?[.sqlState] ?? ""
        return state == "40001" || state == "40P01"
    }

    /// Whether this is a unique-constraint violation (SQLSTATE 23505).
    var isUniqueViolation: Bool {
        guard let error = self as? PSQLError, error.code == .server else { return false }
        return error.serverInfo?[.sqlState] == "23505"
    }
}

/// The first of an operation's result, its deadline and the caller's cancellation resumes the caller, once.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var cleanup: (@Sendable () -> Void)?
        var done = false
    }
    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            if let early = state.early { return early }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    /// Registers what to do once decided (cancel the losers); runs at once if already decided.
    func onFinish(_ cleanup: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.done { return true }
            state.cleanup = cleanup
            return false
        }
        if runNow { cleanup() }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, cleanup) = state.withLock { state -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) in
            if state.done { return (nil, nil) }
            state.done = true
            let continuation = state.continuation
            state.continuation = nil
            if continuation == nil { state.early = result }
            let cleanup = state.cleanup
            state.cleanup = nil
            return (continuation, cleanup)
        }
        continuation?.resume(with: result)
        cleanup?()
    }
}
