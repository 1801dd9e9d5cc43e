import Foundation
import RelayTestSupport
import Testing

@testable import RelayStore

/// `withDeadline` answers its caller at the deadline even when the operation ignores cancellation (the chaos
/// suite found calls in flight at a PostgreSQL stop that never returned, and the old deadline waited for them).
@Suite struct DeadlineTests {
    /// Finishes after `seconds` whatever happens: not cancellable.
    static func stubbornWait(seconds: Double) async -> Int {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { continuation.resume(returning: 42) }
        }
    }

    @Test func theDeadlineHoldsWhenTheOperationIgnoresCancellation() async throws {
        try await withMigratedStore { database, _ in
            let started = ContinuousClock.now
            await #expect(throws: StoreError.self) {
                try await database.withDeadline(.milliseconds(200)) { await Self.stubbornWait(seconds: 5) }
            }
            #expect(ContinuousClock.now - started < .seconds(3), "answered at the deadline, not when the operation ended")
            // An operation within its deadline gives its result.
            let value = try await database.withDeadline(.seconds(5)) { await Self.stubbornWait(seconds: 0.05) }
            #expect(value == 42)
            // The caller's cancellation ends the wait too.
            let task = Task { try await database.withDeadline(.seconds(30)) { await Self.stubbornWait(seconds: 5) } }
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
        }
    }
}
