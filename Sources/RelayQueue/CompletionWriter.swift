import Foundation
import Logging
import RelayCore
import RelayStore
import Synchronization

/// Gathers outcomes from many concurrent deliveries and writes them in batches (one statement per batch),
/// the single biggest throughput lever of a PostgreSQL queue. Outcomes are kept in memory until written;
/// when the database is down they wait and the write is retried. If the node dies first, the leases expire
/// and the recipients are attempted again (the documented duplicate window).
final class CompletionWriter: Sendable {
    /// What one delivery task hands in: its outcomes and the attempt that produced them.
    private struct Unit {
        var outcomes: [CompletedDelivery]
        var attempt: AttemptLog?
    }

    private struct State {
        var pending: [Unit] = []
        var pendingOutcomes = 0
        var finishing = false
    }

    private let state = Mutex(State())
    private let wakeup = WakeupSignal()
    private let database: RelayDatabase
    private let owner: UUID
    private let batchSize: Int
    private let flushInterval: Duration
    private let logger: Logger
    private let softBounces: SoftBouncePolicy
    /// Called with the recipient ids whose outcome is now durable.
    private let onWritten: @Sendable ([Int64]) -> Void

    init(database: RelayDatabase, owner: UUID, batchSize: Int, flushInterval: Duration, logger: Logger,
         softBounces: SoftBouncePolicy = SoftBouncePolicy(), onWritten: @escaping @Sendable ([Int64]) -> Void) {
        self.softBounces = softBounces
        self.database = database
        self.owner = owner
        self.batchSize = batchSize
        self.flushInterval = flushInterval
        self.logger = logger
        self.onWritten = onWritten
    }

    /// Queues outcomes (and the attempt log that goes with them) for the next batch.
    func submit(_ outcomes: [CompletedDelivery], attempt: AttemptLog? = nil) {
        let full = state.withLock { state -> Bool in
            state.pending.append(Unit(outcomes: outcomes, attempt: attempt))
            state.pendingOutcomes += outcomes.count
            return state.pendingOutcomes >= batchSize
        }
        if full { wakeup.signal() }
    }

    /// Writes batches until `finish()` is called and everything pending is written.
    func run() async {
        var failures = 0
        while true {
            let (batch, finishing) = state.withLock { state -> ([Unit], Bool) in
                // Whole units, at least one, until the batch holds `batchSize` outcomes.
                var count = 0
                var taken = 0
                while taken < state.pending.count && (taken == 0 || count + state.pending[taken].outcomes.count <= batchSize) {
                    count += state.pending[taken].outcomes.count
                    taken += 1
                }
                let batch = Array(state.pending.prefix(taken))
                state.pending.removeFirst(taken)
                state.pendingOutcomes -= count
                return (batch, state.finishing)
            }
            if batch.isEmpty {
                if finishing || Task.isCancelled { return }
                await wakeup.wait(timeout: flushInterval)
                continue
            }
            let outcomes = batch.flatMap(\.outcomes)
            do {
                try await database.complete(outcomes, attempts: batch.compactMap(\.attempt), owner: owner,
                                            softBounces: softBounces)
                failures = 0
                onWritten(outcomes.map(\.recipientID))
            } catch {
                failures += 1
                logger.error("writing delivery outcomes failed; will retry", metadata: [
                    "error": "\(String(reflecting: error))", "outcomes": "\(outcomes.count)"])
                state.withLock {
                    $0.pending.insert(contentsOf: batch, at: 0)
                    $0.pendingOutcomes += outcomes.count
                }
                if finishing && failures >= 5 {
                    logger.error("giving up writing outcomes at shutdown; their leases will expire and they will be retried",
                                 metadata: ["outcomes": "\(state.withLock { $0.pendingOutcomes })"])
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
