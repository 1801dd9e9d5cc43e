import Logging
import ServiceLifecycle
import Synchronization

/// Whether this node is draining: set when a graceful shutdown (SIGTERM) starts, read by `/readyz`.
public final class DrainSignal: Sendable {
    private let draining = Atomic<Bool>(false)

    public init() {}

    /// True from the start of a graceful shutdown.
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    func start() { draining.store(true, ordering: .relaxed) }
}

/// Runs after the application in the process's service group, so that a graceful shutdown reaches it first:
/// it turns `/readyz` to 503 (`draining`) and waits `RELAY_DRAIN_DELAY` while the HTTP server still answers, so
/// that load balancers see the node leave by its health check instead of by refused connections. Only then does
/// the application stop its listeners and finish its deliveries.
public struct DrainAnnouncer: Service {
    let signal: DrainSignal
    let delay: Duration
    let logger: Logger

    public init(signal: DrainSignal, delay: Duration, logger: Logger) {
        self.signal = signal
        self.delay = delay
        self.logger = logger
    }

    public func run() async throws {
        // Returns when a graceful shutdown starts (or throws when the task is cancelled: then stop at once).
        do { try await gracefulShutdown() } catch { return }
        signal.start()
        guard delay > .zero else { return }
        logger.notice("draining: /readyz answers 503 while load balancers take this node out", metadata: [
            "drain_delay": "\(delay)"])
        try? await Task.sleep(for: delay)
    }
}
