// The resolver's TTL cache: positive answers for their smallest TTL, negative answers per RFC 2308.
import Synchronization

/// A bounded, thread-safe map from (name, type) to a query result and the instant it expires.
final class DNSCache: Sendable {
    struct Key: Hashable, Sendable {
        var name: String
        var type: DNSRecordType
    }

    private struct Entry {
        var result: DNSQueryResult
        var stored: ContinuousClock.Instant
        var expires: ContinuousClock.Instant
    }

    private let capacity: Int
    private let entries: Mutex<[Key: Entry]>

    init(capacity: Int) {
        self.capacity = max(0, capacity)
        self.entries = Mutex([:])
    }

    /// The cached result with its TTLs counted down to what remains, or nil if absent or expired.
    func lookup(_ key: Key, now: ContinuousClock.Instant = .now) -> DNSQueryResult? {
        entries.withLock { entries -> DNSQueryResult? in
            guard let entry = entries[key] else { return nil }
            guard entry.expires > now else {
                entries[key] = nil
                return nil
            }
            let elapsed = UInt32(clamping: (now - entry.stored).components.seconds)
            var result = entry.result
            result.ttl = result.ttl - min(result.ttl, elapsed)
            result.records = result.records.map { record in
                var record = record
                record.ttl = min(record.ttl - min(record.ttl, elapsed), result.ttl)
                return record
            }
            return result
        }
    }

    /// Stores a result for `result.ttl` seconds; a TTL of zero is not stored. When full, expired entries go
    /// first, then the tenth of the entries closest to expiring.
    func store(_ result: DNSQueryResult, for key: Key, now: ContinuousClock.Instant = .now) {
        guard result.ttl > 0, capacity > 0 else { return }
        let entry = Entry(result: result, stored: now, expires: now + .seconds(Int64(result.ttl)))
        entries.withLock { entries in
            if entries[key] == nil, entries.count >= capacity {
                entries = entries.filter { $0.value.expires > now }
                if entries.count >= capacity {
                    let victims = entries.sorted { $0.value.expires < $1.value.expires }
                        .prefix(max(1, capacity / 10)).map(\.key)
                    for victim in victims { entries[victim] = nil }
                }
            }
            entries[key] = entry
        }
    }

    /// How many entries are held, expired ones included.
    var count: Int { entries.withLock { $0.count } }

    /// Forgets everything.
    func removeAll() { entries.withLock { $0.removeAll() } }
}
