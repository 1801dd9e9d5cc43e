import Foundation
import Logging
import RelayStore
import Synchronization

/// Gathers outcomes from many concurrent deliveries and writes them in batches (one statement per batch),
/// the single biggest throughput lever of a PostgreSQL queue. Outcomes are kept in memory until written;
/// when the database is down they wait and the write is retried. If the node dies first, the leases expire
/// and the recipients are attempted again (the documented duplicate window).
final class CompletionWriter: Sendable {
    private struct State {
        var pending: [CompletedDelivery] = []
        var finishing = false
    }

    private let state = Mutex(State())
    private let wakeup = WakeupSignal()
    private let database: RelayDatabase
    private let owner: UUID
    private let batchSize: Int
    private let flushInterval: Duration
    private let logger: Logger
    /// Called with the recipient ids whose outcome is now durable.
    private let onWritten: @Sendable ([Int64]) -> Void

    init(database: RelayDatabase, owner: UUID, batchSize: Int, flushInterval: Duration, logger: Logger,
         onWritten: @escaping @Sendable ([Int64]) -> Void) {
        self.database = database
        self.owner = owner
        self.batchSize = batchSize
        self.flushInterval = flushInterval
        self.logger = logger
        self.onWritten = onWritten
    }

    /// Queues outcomes for the next batch.
    func submit(_ outcomes: [CompletedDelivery]) {
        let full = state.withLock { state -> Bool in
            state.pending += outcomes
            return state.pending.count >= batchSize
        }
        if full { wakeup.signal() }
    }

    /// Writes batches until `finish()` is called and everything pending is written.
    func run() async {
        var failures = 0
        while true {
            let (batch, finishing) = state.withLock { state -> ([CompletedDelivery], Bool) in
                let batch = Array(state.pending.prefix(batchSize))
                state.pending.removeFirst(batch.count)
                return (batch, state.finishing)
            }
            if batch.isEmpty {
                if finishing || Task.isCancelled { return }
                await wakeup.wait(timeout: flushInterval)
                continue
            }
            do {
                try await database.complete(batch, owner: owner)
                failures = 0
                onWritten(batch.map(\.recipientID))
            } catch {
                failures += 1
                logger.error("writing delivery outcomes failed; will retry", metadata: [
                    "error": "\(String(reflecting: error))", "outcomes": "\(batch.count)"])
                state.withLock { $0.pending.insert(contentsOf: batch, at: 0) }
                if finishing && failures >= 5 {
                    logger.error("giving up writing outcomes at shutdown; their leases will expire and they will be retried",
                                 metadata: ["outcomes": "\(state.withLock { $0.pending.count })"])
                    return
                }
                try? await Task.sleep(for: .milliseconds(min(5000, 100 * (1 << min(failures, 6)))))
            }
        }
    }

    /// Makes `run()` return once everything pending is written.
    func finish() {
        state.withLock { $0.finishing = true }
        wakeup.signal()
    }
}
