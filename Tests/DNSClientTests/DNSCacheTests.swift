import Testing
@testable import DNSClient

@Suite("TTL cache")
struct DNSCacheTests {
    private func result(_ name: String, ttl: UInt32) -> DNSQueryResult {
        DNSQueryResult(name: name, type: .a, rcode: .noError,
                       records: [DNSResourceRecord(name: name, ttl: ttl, data: .a("127.0.0.1"))],
                       authoritative: false, ttl: ttl, canonicalName: name)
    }

    @Test func entriesCountDownAndExpire() throws {
        let cache = DNSCache(capacity: 10)
        let key = DNSCache.Key(name: "a.test", type: .a)
        let start = ContinuousClock.Instant.now
        cache.store(result("a.test", ttl: 10), for: key, now: start)
        let later = try #require(cache.lookup(key, now: start + .seconds(4)))
        #expect(later.ttl == 6)
        #expect(later.records.first?.ttl == 6)
        #expect(cache.lookup(key, now: start + .seconds(10)) == nil)
        #expect(cache.count == 0)
    }

    @Test func zeroTTLIsNotStored() {
        let cache = DNSCache(capacity: 10)
        cache.store(result("a.test", ttl: 0), for: DNSCache.Key(name: "a.test", type: .a))
        #expect(cache.count == 0)
    }

    @Test func capacityIsBounded() {
        let cache = DNSCache(capacity: 20)
        let start = ContinuousClock.Instant.now
        for index in 0..<100 {
            cache.store(result("h\(index).test", ttl: UInt32(100 + index)),
                        for: DNSCache.Key(name: "h\(index).test", type: .a), now: start)
        }
        #expect(cache.count <= 20)
        // The most recently stored entry, which also lives longest, survives.
        #expect(cache.lookup(DNSCache.Key(name: "h99.test", type: .a), now: start) != nil)
    }
}
