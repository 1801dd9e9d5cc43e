import DNSClient
import Foundation
import RelayStore

/// The DNS lookups a domain check needs; `DNSResolver` in production, a table in unit tests.
public protocol DomainDNSLookup: Sendable {
    /// TXT records of a name, each record's strings joined; empty for NXDOMAIN or NODATA.
    func txt(_ name: String) async throws -> [String]
    /// MX exchange hosts of a name; empty for NXDOMAIN or NODATA.
    func mx(_ name: String) async throws -> [String]
}

/// Looks records up through Relay's resolver with a cache of its own that each check empties first, so a record
/// the user has just published is seen at once (the delivery resolver's cache is not touched).
public struct ResolverLookup: DomainDNSLookup {
    let resolver: DNSResolver

    /// A lookup over the given servers.
    public init(servers: [DNSServerAddress]) {
        resolver = DNSResolver(servers: servers, timeout: .seconds(2), attempts: 2, cacheCapacity: 64)
    }

    func forget() { resolver.clearCache() }

    public func txt(_ name: String) async throws -> [String] {
        try await resolver.txt(name)
    }

    public func mx(_ name: String) async throws -> [String] {
        try await resolver.query(name, type: .mx).records.compactMap {
            guard case .mx(_, let exchange) = $0.data else { return nil }
            return exchange
        }
    }
}

/// Checks a domain's published records against the expected ones. The matching rules are pure static functions.
public enum DomainVerifier {
    /// The status of every expected record, and the result to store.
    public static func check(_ expected: [ExpectedRecord], lookup: some DomainDNSLookup, settings: DomainSettings)
        async -> (statuses: [(record: ExpectedRecord, status: DNSRecordStatus, found: String?)], result: DomainCheckResult) {
        if let fresh = lookup as? ResolverLookup { fresh.forget() }
        // All lookups at once: a check takes one DNS round trip (or one timeout), not one per record.
        let results = await withTaskGroup(of: (Int, DNSRecordStatus, String?).self) { group in
            for (index, record) in expected.enumerated() {
                group.addTask {
                    do {
                        let (status, found) = switch record.purpose {
                        case "dkim": dkim(published: try await lookup.txt(record.name), expected: record.value)
                        case "spf": spf(published: try await lookup.txt(record.name), mechanism: settings.spfMechanism)
                        case "return_path": mx(published: try await lookup.mx(record.name), host: record.value)
                        default: dmarc(published: try await lookup.txt(record.name))
                        }
                        return (index, status, found)
                    } catch {
                        return (index, .error, "\(error)")
                    }
                }
            }
            var byIndex: [Int: (DNSRecordStatus, String?)] = [:]
            for await (index, status, found) in group { byIndex[index] = (status, found) }
            return byIndex
        }
        let statuses = expected.enumerated().map { index, record in
            (record: record, status: results[index]?.0 ?? .error, found: results[index]?.1)
        }
        var checks: [String: [String: String]] = [:]
        let checkedAt = ISO8601DateFormatter().string(from: Date())
        for (record, status, found) in statuses where record.purpose != "dkim" {
            var entry = ["status": status.rawValue, "checked_at": checkedAt]
            if let found { entry["found"] = found }
            checks[record.purpose] = entry
        }
        let json = (try? JSONSerialization.data(withJSONObject: checks, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let keys = statuses.compactMap { entry in entry.record.selector.map { ($0, entry.status, entry.found) } }
        return (statuses, DomainCheckResult(keys: keys, checksJSON: json, rotationGrace: settings.rotationGrace))
    }

    /// RFC 6376 §3.6.1 tag list: `tag=value` pairs split on `;`, whitespace around them ignored.
    static func tags(_ record: String) -> [String: String] {
        var result: [String: String] = [:]
        for part in record.split(separator: ";") {
            guard let equals = part.firstIndex(of: "=") else { continue }
            let name = part[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = part[part.index(after: equals)...].filter { !$0.isWhitespace }
            result[name] = String(value)
        }
        return result
    }

    /// A DKIM key record verifies when one published record carries the same public key (p=) and key type.
    public static func dkim(published: [String], expected: String) -> (DNSRecordStatus, String?) {
        guard !published.isEmpty else { return (.notFound, nil) }
        let want = tags(expected)
        for record in published {
            let have = tags(record)
            if have["p"] == want["p"] && (have["k"] ?? "rsa").lowercased() == (want["k"] ?? "rsa") { return (.verified, nil) }
        }
        return (.mismatch, published[0])
    }

    /// SPF verifies when the name has exactly one SPF record and it holds the mechanism; two SPF records are a
    /// permanent error for receivers (RFC 7208 §4.5), so that is a mismatch even if one is right.
    public static func spf(published: [String], mechanism: String) -> (DNSRecordStatus, String?) {
        let records = published.filter {
            let lower = $0.lowercased()
            return lower == "v=spf1" || lower.hasPrefix("v=spf1 ")
        }
        guard !records.isEmpty else { return (.notFound, published.first) }
        guard records.count == 1 else { return (.mismatch, records.joined(separator: " | ")) }
        let terms = records[0].lowercased().split(whereSeparator: \.isWhitespace).map { $0.hasPrefix("+") ? $0.dropFirst() : $0[...] }
        return terms.contains(where: { $0 == mechanism.lowercased()[...] }) ? (.verified, nil) : (.mismatch, records[0])
    }

    /// The return-path MX verifies when one of the name's exchangers is Relay's host.
    public static func mx(published: [String], host: String) -> (DNSRecordStatus, String?) {
        guard !published.isEmpty else { return (.notFound, nil) }
        let normalized = published.map { $0.lowercased().hasSuffix(".") ? String($0.lowercased().dropLast()) : $0.lowercased() }
        return normalized.contains(host.lowercased()) ? (.verified, nil) : (.mismatch, normalized.joined(separator: ", "))
    }

    /// DMARC verifies when a DMARC record exists (any policy: the user decides how strict).
    public static func dmarc(published: [String]) -> (DNSRecordStatus, String?) {
        if published.contains(where: { $0.lowercased().hasPrefix("v=dmarc1") }) { return (.verified, nil) }
        return published.isEmpty ? (.notFound, nil) : (.mismatch, published[0])
    }
}
