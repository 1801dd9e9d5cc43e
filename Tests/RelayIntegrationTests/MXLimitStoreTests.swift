import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// The cluster-wide MX connection slots and throttles, on a real PostgreSQL: nodes (here: node ids on separate
/// connections) compete for one host's slots.
@Suite struct MXLimitStoreTests {
    @Test func manyNodesTakingSlotsAtOnceNeverHoldMoreThanTheLimit() async throws {
        try await withMigratedStore { database, _ in
            let nodes = (0..<8).map { _ in UUID() }
            // 8 nodes × 4 attempts race for 3 slots.
            let taken = try await withThrowingTaskGroup(of: (UUID, Int?).self) { group in
                for node in nodes {
                    for _ in 0..<4 {
                        group.addTask {
                            (node, try await database.takeMXSlot(host: "mx.busy.test", nodeID: node, limit: 3, lease: .seconds(60)).slot)
                        }
                    }
                }
                var taken: [(UUID, Int)] = []
                for try await (node, slot) in group { if let slot { taken.append((node, slot)) } }
                return taken
            }
            #expect(taken.count == 3)
            #expect(Set(taken.map(\.1)) == [0, 1, 2])
            let again = try await database.takeMXSlot(host: "mx.busy.test", nodeID: UUID(), limit: 3, lease: .seconds(60))
            #expect(again == MXSlotGrant(slot: nil, limit: 3))
            // Another host has its own slots.
            #expect(try await database.takeMXSlot(host: "mx.other.test", nodeID: nodes[0], limit: 3, lease: .seconds(60)).slot != nil)
            // A released slot can be taken again.
            let (holder, slot) = taken[0]
            try await database.releaseMXSlot(host: "mx.busy.test", slot: slot, nodeID: holder)
            #expect(try await database.takeMXSlot(host: "mx.busy.test", nodeID: nodes[1], limit: 3, lease: .seconds(60)).slot == slot)
            let statuses = try await database.mxHostStatuses()
            #expect(statuses.map(\.host) == ["mx.busy.test", "mx.other.test"])
            #expect(statuses.map(\.connections) == [3, 1])
        }
    }

    @Test func theSlotsOfANodeThatStoppedRenewingAreTakenOverAfterTheirLease() async throws {
        try await withMigratedStore { database, _ in
            let dead = UUID(), alive = UUID(), newcomer = UUID()
            #expect(try await database.takeMXSlot(host: "mx.lease.test", nodeID: dead, limit: 2, lease: .seconds(5)).slot != nil)
            #expect(try await database.takeMXSlot(host: "mx.lease.test", nodeID: alive, limit: 2, lease: .seconds(5)).slot != nil)
            // The live node renews its slot for a minute; the dead one never renews.
            try await database.renewMXSlots(nodeID: alive, lease: .seconds(60))
            #expect(try await database.takeMXSlot(host: "mx.lease.test", nodeID: newcomer, limit: 2, lease: .seconds(60)).slot == nil)
            // Once the dead node's 5 s lease has run out, its slot — and only its slot — can be taken.
            try await waitUntil("the dead node's lease runs out", timeout: .seconds(30), interval: .milliseconds(200)) {
                try await database.takeMXSlot(host: "mx.lease.test", nodeID: newcomer, limit: 2, lease: .seconds(60)).slot != nil
            }
            #expect(try await database.takeMXSlot(host: "mx.lease.test", nodeID: newcomer, limit: 2, lease: .seconds(60)).slot == nil)
            #expect(try await database.mxHostStatuses().first?.connections == 2)
        }
    }

    @Test func aThrottleHalvesTheOpenConnectionsOncePerSignalAndCanBeLifted() async throws {
        try await withMigratedStore { database, _ in
            let node = UUID()
            for _ in 0..<6 {
                #expect(try await database.takeMXSlot(host: "mx.slow.test", nodeID: node, limit: 10, lease: .seconds(60)).slot != nil)
            }
            // 6 open → 3; the replies of the other open connections within 10 s are the same signal.
            #expect(try await database.throttleMX(host: "mx.slow.test", configuredLimit: 10, duration: .seconds(60), reply: "421 4.7.0 slow down") == 3)
            #expect(try await database.throttleMX(host: "mx.slow.test", configuredLimit: 10, duration: .seconds(60), reply: "421 4.7.0 slow down") == 3)
            // The lower limit applies to new connections at once, on every node.
            #expect(try await database.takeMXSlot(host: "mx.slow.test", nodeID: UUID(), limit: 10, lease: .seconds(60)) == MXSlotGrant(slot: nil, limit: 3))
            let status = try #require(try await database.mxHostStatuses().first)
            #expect(status.throttledLimit == 3)
            #expect(status.reply == "421 4.7.0 slow down")
            #expect((status.throttledUntil ?? .distantPast) > Date().addingTimeInterval(50))
            // A throttle never goes below one connection.
            #expect(try await database.throttleMX(host: "mx.one.test", configuredLimit: 10, duration: .seconds(60), reply: "421") == 1)
            // Lifting restores the configured limit.
            #expect(try await database.liftMXThrottle(host: "mx.slow.test"))
            #expect(try await !database.liftMXThrottle(host: "mx.slow.test"))
            #expect(try await database.takeMXSlot(host: "mx.slow.test", nodeID: UUID(), limit: 10, lease: .seconds(60)).slot != nil)
        }
    }

    @Test func anExpiredThrottleNoLongerLimits() async throws {
        try await withMigratedStore { database, _ in
            // 5 s: the first take must come before the end even on a loaded machine.
            _ = try await database.throttleMX(host: "mx.brief.test", configuredLimit: 4, duration: .seconds(5), reply: "421")
            #expect(try await database.takeMXSlot(host: "mx.brief.test", nodeID: UUID(), limit: 4, lease: .seconds(60)).limit == 1)
            try await waitUntil("the throttle runs out", timeout: .seconds(30), interval: .milliseconds(200)) {
                try await database.takeMXSlot(host: "mx.brief.test", nodeID: UUID(), limit: 4, lease: .seconds(60)).limit == 4
            }
            #expect(try await database.mxHostStatuses().first?.throttledLimit == nil)
        }
    }
}
