#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOPosix

/// Resolves host names to addresses with the system resolver (`getaddrinfo`, as a browser or curl would), on
/// NIO's blocking-I/O thread pool so no event loop or cooperative thread waits.
public struct HostResolver: Sendable {
    public init() {}

    /// Every address of `host` (IPv4 and IPv6, without duplicates); throws when the name does not resolve.
    public func addresses(of host: String) async throws -> [IPAddress] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, nil, &hints, &list)
            guard status == 0, let first = list else {
                throw ResolutionError(host: host, reason: String(cString: gai_strerror(status)))
            }
            defer { freeaddrinfo(first) }
            var found: [IPAddress] = []
            var entry: UnsafeMutablePointer<addrinfo>? = first
            while let current = entry {
                if let address = Self.address(current.pointee), !found.contains(address) { found.append(address) }
                entry = current.pointee.ai_next
            }
            return found
        }
    }

    private static func address(_ info: addrinfo) -> IPAddress? {
        switch info.ai_family {
        case AF_INET:
            return info.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                var address = pointer.pointee.sin_addr
                return .v4(withUnsafeBytes(of: &address) { Array($0) })
            }
        case AF_INET6:
            return info.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                var address = pointer.pointee.sin6_addr
                return .v6(withUnsafeBytes(of: &address) { Array($0) })
            }
        default:
            return nil
        }
    }

    /// `addresses(of:)` bounded by `timeout` (the lookup itself cannot be cancelled and finishes in the background).
    public func addresses(of host: String, timeout: Duration) async throws -> [IPAddress] {
        try await withThrowingTaskGroup(of: [IPAddress]?.self) { group in
            group.addTask { try await addresses(of: host) }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let addresses = first else {
                throw ResolutionError(host: host, reason: "no answer within \(timeout)")
            }
            return addresses
        }
    }

    /// A name that did not resolve.
    public struct ResolutionError: Error, CustomStringConvertible {
        public var host: String
        public var reason: String
        public var description: String { "\(host) did not resolve: \(reason)" }
    }
}

/// Decides where a webhook may be sent: refuses private, loopback, link-local and other non-public addresses
/// (unless `allowPrivate`) and returns the address to connect to, so the connection goes to the very address
/// that was checked and a second DNS answer cannot swap it for an internal one (DNS rebinding).
public struct WebhookTargetCheck: Sendable {
    /// How long a name may take to resolve (the system resolver has its own, often longer, timeouts).
    static let resolutionTimeout: Duration = .seconds(5)

    public let allowPrivate: Bool
    let resolver: HostResolver

    public init(allowPrivate: Bool, resolver: HostResolver = HostResolver()) {
        self.allowPrivate = allowPrivate
        self.resolver = resolver
    }

    /// The verdict on one URL.
    public enum Verdict: Sendable, Equatable {
        /// Connect to `address` (nil: the guard is off, connect as the URL says).
        case allowed(pinned: IPAddress?)
        /// Never connect; the sentence says why.
        case refused(String)
    }

    /// Checks the host: an address literal directly, a name through every address it resolves to.
    /// `requireResolution` false (used when an endpoint is created) lets a name that does not resolve pass,
    /// since it is checked again at every delivery.
    public func check(_ url: WebhookURL, requireResolution: Bool = true) async -> Verdict {
        if allowPrivate { return .allowed(pinned: nil) }
        if let literal = IPAddress(url.host) {
            if let range = AddressGuard.restrictedRange(literal) { return .refused(Self.refusal(url.host, literal, range)) }
            return .allowed(pinned: literal)
        }
        if AddressGuard.isLocalName(url.host) {
            return .refused("\(url.host) is a private address (loopback); webhooks are only sent to public addresses")
        }
        let addresses: [IPAddress]
        do {
            addresses = try await resolver.addresses(of: url.host, timeout: Self.resolutionTimeout)
        } catch {
            return requireResolution ? .refused("\(error)") : .allowed(pinned: nil)
        }
        for address in addresses {
            if let range = AddressGuard.restrictedRange(address) { return .refused(Self.refusal(url.host, address, range)) }
        }
        guard let first = addresses.first else { return requireResolution ? .refused("\(url.host) has no address") : .allowed(pinned: nil) }
        return .allowed(pinned: first)
    }

    static func refusal(_ host: String, _ address: IPAddress, _ range: String) -> String {
        let shown = host == address.description ? host : "\(host) (\(address))"
        return "\(shown) is a private address (\(range)); webhooks are only sent to public addresses"
    }
}
