import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SMTPServer
import Synchronization

/// A value behind a lock that closures can share (Mutex itself cannot be captured).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<Result: Sendable>(_ body: (inout sending Value) throws -> sending Result) rethrows -> Result {
        try mutex.withLock(body)
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One submission listener on 127.0.0.1, run in its own ServiceGroup, stopped by `shutdown()`.
final class RunningServer: Sendable {
    let port: Int
    let backend: TestBackend
    let tls: TLSMaterial
    let server: SMTPSubmissionServer
    private let group: ServiceGroup
    private let task: Task<Void, Never>
    private let outcome: Locked<Result<Void, any Error>?>

    fileprivate init(port: Int, backend: TestBackend, tls: TLSMaterial, server: SMTPSubmissionServer, group: ServiceGroup,
                     task: Task<Void, Never>, outcome: Locked<Result<Void, any Error>?>) {
        self.port = port
        self.backend = backend
        self.tls = tls
        self.server = server
        self.group = group
        self.task = task
        self.outcome = outcome
    }

    /// Starts graceful shutdown and returns at once.
    func triggerShutdown() async {
        await group.triggerGracefulShutdown()
    }

    /// Whether the listener's `run()` has returned.
    var hasStopped: Bool { outcome.withLock { $0 != nil } }

    /// Shuts down gracefully and waits for the listener's `run()` to return (at most `timeout`).
    func shutdown(timeout: Duration = .seconds(30)) async throws {
        await group.triggerGracefulShutdown()
        try await waitUntilStopped(timeout: timeout)
    }

    /// Waits for `run()` to return; cancels it and throws after `timeout`.
    func waitUntilStopped(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let result = outcome.withLock({ $0 }) {
                try result.get()
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        task.cancel()
        throw HarnessError("the SMTP listener did not stop within \(timeout)")
    }
}

enum ServerHarness {
    static let logger: Logger = {
        var logger = Logger(label: "relay.smtp.test")
        logger.logLevel = ProcessInfo.processInfo.environment["SMTP_TEST_LOG"] == nil ? .critical : .debug
        return logger
    }()

    /// One self-signed certificate shared by all tests (generating it is the slow part).
    static let tls: TLSMaterial = {
        let directory = NSTemporaryDirectory() + "relay-smtp-nio-tests-\(getpid())"
        return try! TLSMaterial(certificatePath: nil, keyPath: nil, hostname: "mail.relay.test",
                                generatedDirectory: directory, logger: logger)
    }()

    /// Starts a listener on a random free port in 20000–31999 (not port 0, so it cannot collide with the
    /// kernel's ephemeral ports used by other tests) and waits until it accepts connections.
    static func start(security: SMTPSubmissionServer.Security, backend: TestBackend = TestBackend(),
                      maximumSessions: Int = 1000, commandTimeout: Duration = .seconds(300),
                      shutdownGracePeriod: Duration = .seconds(20)) async throws -> RunningServer {
        var lastError: (any Error)?
        for _ in 0..<20 {
            let port = Int.random(in: 20_000...31_999)
            guard canBind(port: port) else { continue }
            let bound = Locked<Int?>(nil)
            let configuration = SMTPServerConfiguration(hostname: "mail.relay.test", maximumMessageSize: 10_000_000,
                                                        offersSTARTTLS: security == .startTLS)
            let server = SMTPSubmissionServer(
                host: "127.0.0.1", port: port, security: security, configuration: configuration, tls: tls, backend: backend,
                maximumSessions: maximumSessions, commandTimeout: commandTimeout, shutdownGracePeriod: shutdownGracePeriod,
                eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger,
                onBound: { port in bound.withLock { $0 = port } }
            )
            let group = ServiceGroup(configuration: .init(services: [server], gracefulShutdownSignals: [], logger: logger))
            let outcome = Locked<Result<Void, any Error>?>(nil)
            let task = Task {
                do {
                    try await group.run()
                    outcome.withLock { $0 = .success(()) }
                } catch {
                    outcome.withLock { $0 = .failure(error) }
                }
            }
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                if let port = bound.withLock({ $0 }) {
                    return RunningServer(port: port, backend: backend, tls: tls, server: server, group: group, task: task,
                                         outcome: outcome)
                }
                // A bind failure (the port was taken meanwhile) ends the group quickly: try another port.
                if let result = outcome.withLock({ $0 }) {
                    if case .failure(let error) = result { lastError = error }
                    break
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            task.cancel()
        }
        throw HarnessError("could not start the SMTP listener: \(String(describing: lastError))")
    }

    private static func canBind(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

/// Runs `body` with a started server and always shuts the server down afterwards.
func withServer(security: SMTPSubmissionServer.Security, backend: TestBackend = TestBackend(), maximumSessions: Int = 1000,
                commandTimeout: Duration = .seconds(300),
                _ body: (RunningServer) async throws -> Void) async throws {
    let server = try await ServerHarness.start(security: security, backend: backend, maximumSessions: maximumSessions,
                                               commandTimeout: commandTimeout)
    do {
        try await body(server)
    } catch {
        try? await server.shutdown()
        throw error
    }
    try await server.shutdown()
}
