// A stub resolver: asks configured recursive servers, follows CNAMEs, caches by TTL.
//
// Tunables and their defaults:
//   timeout              5 s      per attempt, per server, for UDP and again for a TCP retry
//   attempts             2        rounds over the server list (resolv.conf(5) "attempts")
//   cacheCapacity        10 000   cached (name, type) results
//   maxPositiveTTL       1 day    longest time an answer is cached, whatever its TTL
//   maxNegativeTTL       5 min    longest time NXDOMAIN/NODATA is cached (RFC 2308 §5 suggests 1–3 h; mail
//                                 retries want a new domain to work soon)
//   maxCNAMEChain        8        aliases followed before the lookup fails as a server failure
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The outcome of one `DNSResolver.query`.
public struct DNSQueryResult: Sendable, Hashable {
    /// The name asked for, in canonical form (lowercase, no trailing dot).
    public var name: String
    /// The type asked for.
    public var type: DNSRecordType
    /// NOERROR or NXDOMAIN; other codes are thrown as `DNSError`. For a CNAME chain it is the code for the
    /// chain's last name (RFC 6604 §3).
    public var rcode: DNSResponseCode
    /// The records of the asked type at the end of the CNAME chain; empty for NXDOMAIN and NODATA.
    public var records: [DNSResourceRecord]
    /// Whether the answering server said it is authoritative (AA).
    public var authoritative: Bool
    /// Seconds this result stays valid: the smallest TTL of the chain and answers, or the negative-caching TTL
    /// (RFC 2308 §5). Counts down when the result comes from the cache; 0 means it was not cached.
    public var ttl: UInt32
    /// The name at the end of the CNAME chain; equal to `name` when there was no alias.
    public var canonicalName: String

    /// Creates a result.
    public init(name: String, type: DNSRecordType, rcode: DNSResponseCode, records: [DNSResourceRecord],
                authoritative: Bool, ttl: UInt32, canonicalName: String) {
        self.name = name
        self.type = type
        self.rcode = rcode
        self.records = records
        self.authoritative = authoritative
        self.ttl = ttl
        self.canonicalName = canonicalName
    }

    /// True for NXDOMAIN.
    public var isNXDomain: Bool { rcode == .nxDomain }
}

/// One MX record target, as used for delivery.
public struct MXRecord: Sendable, Hashable {
    /// Lower values are tried first (RFC 5321 §5.1).
    public var preference: UInt16
    /// The exchange's host name, canonical form.
    public var host: String

    /// Creates an MX target.
    public init(preference: UInt16, host: String) {
        self.preference = preference
        self.host = host
    }
}

/// Where mail for a domain goes, per RFC 5321 §5.1 and RFC 7505.
public enum MailExchangers: Sendable, Equatable {
    /// The MX hosts in the order to try them: by preference, equal preferences shuffled.
    case exchangers([MXRecord])
    /// No MX records but the domain has an address: deliver to the domain itself (the "implicit MX").
    case implicit(String)
    /// The domain publishes the null MX "0 ." (RFC 7505): it accepts no mail; bounce at once.
    case nullMX
    /// The domain does not exist (NXDOMAIN), or has neither MX nor A/AAAA records: bounce.
    case noSuchDomain
}

/// Resolves names through recursive DNS servers over UDP and TCP, with a TTL cache.
///
/// Thread-safe; share one instance. Concurrent identical lookups are merged into one exchange.
public final class DNSResolver: Sendable {
    /// Longest time a positive answer is cached.
    public static let maxPositiveTTL: UInt32 = 86_400
    /// Longest time a negative answer (NXDOMAIN, NODATA) is cached.
    public static let maxNegativeTTL: UInt32 = 300
    /// Most CNAME records followed for one lookup.
    public static let maxCNAMEChain = 8

    /// The servers asked, in order, rotating past ones that time out.
    public let servers: [DNSServerAddress]
    /// The per-attempt timeout.
    public let timeout: Duration
    /// Rounds over the server list.
    public let attempts: Int

    private let transport: DNSTransport
    private let eventLoopGroup: any EventLoopGroup
    private let cache: DNSCache
    private let logger: Logger
    private let preferredServer = Mutex(0)
    private let inFlight = Mutex<[DNSCache.Key: EventLoopPromise<DNSQueryResult>]>([:])

    /// Creates a resolver asking `servers` (the system's resolv.conf servers if empty). `attempts` is how many
    /// rounds over the list are made before a lookup fails; each exchange has `timeout`. Sockets run on
    /// `eventLoopGroup`, by default NIO's shared singleton group.
    public init(servers: [DNSServerAddress],
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                timeout: Duration = .seconds(5),
                attempts: Int = 2, cacheCapacity: Int = 10_000, logger: Logger = Logger(label: "relay.dns")) {
        self.servers = servers.isEmpty ? DNSServerAddress.systemDefault() : servers
        self.eventLoopGroup = eventLoopGroup
        self.transport = DNSTransport(eventLoopGroup: eventLoopGroup)
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.cache = DNSCache(capacity: cacheCapacity)
        self.logger = logger
    }

    /// Raw query: answers of the asked type (CNAME chains followed within the response, and by further queries
    /// when the server left the chain unfinished), rcode, and the minimum TTL. NXDOMAIN and NODATA are results,
    /// not errors; SERVFAIL, REFUSED, timeouts and garbage throw `DNSError` with `isTemporary == true`; an
    /// invalid name throws `.invalidName`.
    public func query(_ name: String, type: DNSRecordType) async throws -> DNSQueryResult {
        let canonical: String
        do {
            canonical = try DNSName.canonical(name)
        } catch var error {
            error.type = type
            throw error
        }
        let key = DNSCache.Key(name: canonical, type: type)
        if let hit = cache.lookup(key) { return hit }
        return try await shared(key) { try await self.lookup(canonical, type: type, depth: 0) }
    }

    /// IPv4 then IPv6 addresses of a host (A and AAAA asked in parallel), as text; empty if it has none or does
    /// not exist. An address literal is returned as is. If one family fails and the other has addresses, those
    /// are returned; if both fail, or one fails and the other has none, the error is thrown.
    public func addresses(of host: String) async throws -> [String] {
        if IPAddressText.parseIPv4(host) != nil { return [host] }
        if let v6 = IPAddressText.parseIPv6(host) { return [IPAddressText.formatIPv6(v6)] }
        async let v4Result = query(host, type: .a)
        async let v6Result = query(host, type: .aaaa)
        var addresses: [String] = []
        var failure: (any Error)?
        do {
            addresses += try await v4Result.records.compactMap { if case .a(let text) = $0.data { text } else { nil } }
        } catch {
            failure = error
        }
        do {
            addresses += try await v6Result.records.compactMap {
                if case .aaaa(let text) = $0.data { text } else { nil }
            }
        } catch {
            failure = failure ?? error
        }
        if let failure {
            if addresses.isEmpty || failure is CancellationError { throw failure }
            logger.debug("partial address lookup", metadata: ["host": "\(host)", "error": "\(failure)"])
        }
        return addresses
    }

    /// The TXT records of a name, each record's strings concatenated (as RFC 7208 §3.3 and RFC 6376 §3.6.2.2
    /// read them); empty for NXDOMAIN or NODATA.
    public func txt(_ name: String) async throws -> [String] {
        try await query(name, type: .txt).records.compactMap {
            if case .txt(let strings) = $0.data { strings.joined() } else { nil }
        }
    }

    /// Where to deliver mail for a domain, RFC 5321 §5.1: MX records sorted by preference (ties shuffled); no MX
    /// but A/AAAA → `.implicit` (the domain itself); "0 ." null MX (RFC 7505) → `.nullMX`; NXDOMAIN, or no MX and
    /// no address → `.noSuchDomain`. SERVFAIL/timeout throw (temporary).
    public func mailExchangers(for domain: String) async throws -> MailExchangers {
        let result = try await query(domain, type: .mx)
        if result.isNXDomain { return .noSuchDomain }
        let exchangers = result.records.compactMap { record -> MXRecord? in
            guard case .mx(let preference, let exchange) = record.data else { return nil }
            return MXRecord(preference: preference, host: (try? DNSName.canonical(exchange)) ?? exchange)
        }
        if !exchangers.isEmpty {
            // RFC 7505 §3: a null MX is the only MX of its domain; ignore a stray "." among real exchangers.
            let usable = exchangers.filter { $0.host != "." }
            if usable.isEmpty { return .nullMX }
            let byPreference = Dictionary(grouping: usable, by: \.preference)
            return .exchangers(byPreference.keys.sorted().flatMap { byPreference[$0, default: []].shuffled() })
        }
        // RFC 5321 §5.1: with no MX records, the domain itself is the exchanger if it has an address.
        let addresses = try await addresses(of: result.name)
        return addresses.isEmpty ? .noSuchDomain : .implicit(result.name)
    }

    /// Forgets every cached answer.
    public func clearCache() {
        cache.removeAll()
    }

    // MARK: - Lookup

    /// Runs `body` once for concurrent callers with the same key; later callers wait for the first one's
    /// outcome. If the first caller is cancelled, a waiter that is not cancelled runs its own lookup.
    private func shared(_ key: DNSCache.Key,
                        _ body: () async throws -> DNSQueryResult) async throws -> DNSQueryResult {
        enum Role {
            case owner(EventLoopPromise<DNSQueryResult>)
            case waiter(EventLoopFuture<DNSQueryResult>)
        }
        let role = inFlight.withLock { flights -> Role in
            if let running = flights[key] { return .waiter(running.futureResult) }
            let promise = eventLoopGroup.any().makePromise(of: DNSQueryResult.self)
            flights[key] = promise
            return .owner(promise)
        }
        switch role {
        case .owner(let promise):
            do {
                let result = try await body()
                inFlight.withLock { $0[key] = nil }
                promise.succeed(result)
                return result
            } catch {
                inFlight.withLock { $0[key] = nil }
                promise.fail(error)
                throw error
            }
        case .waiter(let future):
            do {
                return try await future.get()
            } catch is CancellationError where !Task.isCancelled {
                if let hit = cache.lookup(key) { return hit }
                return try await shared(key, body)
            }
        }
    }

    private func lookup(_ name: String, type: DNSRecordType, depth: Int) async throws -> DNSQueryResult {
        let response = try await exchange(name, type: type)
        var result = interpret(response, name: name, type: type)
        let key = DNSCache.Key(name: name, type: type)
        if result.records.isEmpty, result.rcode == .noError, type != .cname,
           !DNSName.equal(result.canonicalName, name) {
            // The server stopped at an alias whose target it did not include (RFC 1034 §3.6.2): ask for it.
            // Not merged with other in-flight lookups, so an alias loop cannot make a lookup wait for itself.
            guard depth < Self.maxCNAMEChain else {
                throw DNSError(code: .serverFailure, name: name, type: type,
                               detail: "CNAME chain longer than \(Self.maxCNAMEChain)")
            }
            let targetKey = DNSCache.Key(name: result.canonicalName, type: type)
            let target: DNSQueryResult
            if let hit = cache.lookup(targetKey) {
                target = hit
            } else {
                target = try await lookup(result.canonicalName, type: type, depth: depth + 1)
            }
            result.rcode = target.rcode
            result.records = target.records
            result.ttl = min(result.ttl, target.ttl)
            result.canonicalName = target.canonicalName
            result.authoritative = result.authoritative && target.authoritative
        }
        cache.store(result, for: key)
        return result
    }

    /// Follows the CNAME chain inside one response and works out how long the result may be cached.
    private func interpret(_ response: DNSMessage, name: String, type: DNSRecordType) -> DNSQueryResult {
        // RFC 2181 §8: a TTL with the top bit set is read as zero.
        func ttl(_ record: DNSResourceRecord) -> UInt32 { record.ttl > UInt32(Int32.max) ? 0 : record.ttl }
        var current = name
        var minimumTTL = UInt32.max
        var records: [DNSResourceRecord] = []
        for _ in 0...Self.maxCNAMEChain {
            let matching = response.answers.filter { $0.type == type && DNSName.equal($0.name, current) }
            if !matching.isEmpty {
                records = matching
                minimumTTL = min(minimumTTL, matching.map(ttl).min() ?? 0)
                break
            }
            guard type != .cname,
                  let alias = response.answers.first(where: { $0.type == .cname && DNSName.equal($0.name, current) }),
                  case .cname(let target) = alias.data,
                  let canonicalTarget = try? DNSName.canonical(target) else { break }
            current = canonicalTarget
            minimumTTL = min(minimumTTL, ttl(alias))
        }
        if records.isEmpty {
            // RFC 2308 §5: negative answers are cached for the SOA's TTL capped by its MINIMUM field; without an
            // SOA in the authority section they are not cached.
            let negativeTTL = response.authorities.lazy.compactMap { record -> UInt32? in
                guard case .soa(let soa) = record.data else { return nil }
                return min(ttl(record), soa.minimum)
            }.first ?? 0
            minimumTTL = min(minimumTTL, negativeTTL, Self.maxNegativeTTL)
        } else {
            minimumTTL = min(minimumTTL, Self.maxPositiveTTL)
        }
        let cleaned = records.map { record in
            var record = record
            record.ttl = ttl(record)
            return record
        }
        return DNSQueryResult(name: name, type: type, rcode: response.responseCode, records: cleaned,
                              authoritative: response.header.aa, ttl: minimumTTL, canonicalName: current)
    }

    /// Asks the servers in turn until one gives a usable answer (NOERROR or NXDOMAIN).
    ///
    /// SERVFAIL, REFUSED and other error codes move on to the next server, as does a timeout, which also makes
    /// the next server the first one asked by later lookups. FORMERR to an EDNS query is retried without EDNS
    /// (RFC 6891 §7).
    private func exchange(_ name: String, type: DNSRecordType) async throws -> DNSMessage {
        var lastError = DNSError(code: .timeout, name: name, type: type)
        var useEDNS = true
        let first = preferredServer.withLock { $0 }
        for _ in 0..<attempts {
            var index = 0
            while index < servers.count {
                let serverIndex = (first + index) % servers.count
                let server = servers[serverIndex]
                let query = DNSMessage.query(id: UInt16.random(in: .min ... .max), name: name, type: type,
                                             ednsPayloadSize: useEDNS ? DNSMessage.ednsUDPPayloadSize : nil)
                do {
                    let response = try await transport.exchange(query, with: server, timeout: timeout)
                    let rcode = response.responseCode
                    switch rcode {
                    case .noError, .nxDomain:
                        return response
                    case .formErr where useEDNS:
                        logger.debug("FORMERR to EDNS query, retrying without EDNS",
                                     metadata: ["server": "\(server)", "name": "\(name)"])
                        useEDNS = false
                        continue
                    case .refused:
                        lastError = DNSError(code: .refused, name: name, type: type, detail: "\(server) answered REFUSED")
                    default:
                        lastError = DNSError(code: .serverFailure, name: name, type: type,
                                             detail: "\(server) answered \(rcode)")
                    }
                } catch var error as DNSError {
                    error.name = name
                    error.type = type
                    lastError = error
                    if error.code == .timeout, servers.count > 1 {
                        preferredServer.withLock { $0 = (serverIndex + 1) % servers.count }
                    }
                }
                logger.debug("DNS exchange failed", metadata: ["error": "\(lastError)"])
                index += 1
            }
        }
        if lastError.code == .timeout {
            lastError.detail = "no answer from \(servers.map(\.description).joined(separator: ", ")) "
                + "in \(attempts) attempt\(attempts == 1 ? "" : "s") of \(timeout)"
        }
        throw lastError
    }
}
