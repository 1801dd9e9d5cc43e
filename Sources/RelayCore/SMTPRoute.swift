/// Smarthost routing: which recipient domains go to an upstream SMTP server instead of their MX hosts.
///
/// A route comes from the database (`POST /admin/routes`) or from `RELAY_SMARTHOST`. For a recipient domain the
/// most specific matching database route wins (an exact domain, then the longest `*.suffix`, then `*`); with none,
/// `RELAY_SMARTHOST`; with neither, normal MX delivery.

/// The recipient domains a route applies to.
public enum RouteDomainPattern: Sendable, Hashable, CustomStringConvertible {
    /// `example.org`: that domain only.
    case exact(String)
    /// `*.example.org`: every subdomain of `example.org` at any depth, not `example.org` itself.
    case subdomains(of: String)
    /// `*`: every domain.
    case any

    /// Parses `example.org`, `*.example.org` or `*` (case-insensitive; stored lower case); nil for anything else.
    public init?(_ text: String) {
        let lowered = text.lowercased()
        if lowered == "*" {
            self = .any
        } else if lowered.hasPrefix("*.") {
            let suffix = String(lowered.dropFirst(2))
            guard Self.isDomainName(suffix, minimumLabels: 1) else { return nil }
            self = .subdomains(of: suffix)
        } else {
            guard Self.isDomainName(lowered) else { return nil }
            self = .exact(lowered)
        }
    }

    /// The pattern as written: `example.org`, `*.example.org` or `*`.
    public var description: String {
        switch self {
        case .exact(let domain): domain
        case .subdomains(let suffix): "*.\(suffix)"
        case .any: "*"
        }
    }

    /// Whether the pattern covers `domain` (compared case-insensitively, a trailing dot ignored).
    public func matches(_ domain: String) -> Bool {
        var domain = domain.lowercased()
        if domain.hasSuffix(".") { domain.removeLast() }
        switch self {
        case .exact(let name): return domain == name
        case .subdomains(let suffix): return domain.hasSuffix("." + suffix)
        case .any: return true
        }
    }

    /// Orders matching patterns: an exact domain beats every wildcard, a longer suffix beats a shorter one, and
    /// `*` comes last.
    public var specificity: Int {
        switch self {
        case .exact: Int.max
        case .subdomains(let suffix): 1 + suffix.count
        case .any: 0
        }
    }

    /// A host name of letters, digits and hyphens in dot-separated labels of 1–63 characters, at most 253 in
    /// all, with at least `minimumLabels` labels (RFC 1035 §2.3.1, RFC 1123 §2.1).
    static func isDomainName(_ text: String, minimumLabels: Int = 2) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= minimumLabels else { return false }
        return labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }
        }
    }
}

/// How a route's connections are encrypted.
public enum RouteTLS: String, Sendable, Hashable, CaseIterable {
    /// STARTTLS, required (no plaintext fallback); the usual submission port 587.
    case startTLS = "starttls"
    /// TLS from the first byte (RFC 8314), port 465.
    case implicit
    /// No TLS; then no credentials either (they are only ever sent over TLS).
    case none
}

/// An upstream SMTP server that takes the mail of some recipient domains.
public struct SMTPRoute: Sendable, Hashable {
    /// The route's id: a database route's UUID, or `env` for `RELAY_SMARTHOST`.
    public var id: String
    /// The recipient domains it applies to.
    public var pattern: RouteDomainPattern
    /// Host name or IP address of the smarthost (IPv6 without brackets).
    public var host: String
    /// Its TCP port.
    public var port: Int
    /// The AUTH user name and password, both or neither.
    public var username: String?
    /// See `username`.
    public var password: String?
    /// How connections are encrypted.
    public var tls: RouteTLS
    /// Whether the smarthost's certificate chain and name are verified.
    public var verifyCertificate: Bool

    /// Creates a route.
    public init(id: String, pattern: RouteDomainPattern, host: String, port: Int, username: String? = nil,
                password: String? = nil, tls: RouteTLS = .startTLS, verifyCertificate: Bool = true) {
        self.id = id
        self.pattern = pattern
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.tls = tls
        self.verifyCertificate = verifyCertificate
    }

    /// The route for `domain`: the most specific matching one of `routes` (patterns are unique), else `fallback`
    /// (`RELAY_SMARTHOST`), else nil (MX delivery).
    public static func select(for domain: String, among routes: [SMTPRoute], fallback: SMTPRoute? = nil) -> SMTPRoute? {
        routes.filter { $0.pattern.matches(domain) }.max { $0.pattern.specificity < $1.pattern.specificity } ?? fallback
    }

    /// A smarthost host as given by an operator, normalised: a domain name (lower case, no trailing dot), an IPv4
    /// address, or an IPv6 address with or without brackets (returned without); nil when it is none of these.
    public static func normalizedHost(_ text: String) -> String? {
        var host = text.lowercased()
        let bracketed = host.hasPrefix("[") && host.hasSuffix("]")
        if bracketed { host = String(host.dropFirst().dropLast()) }
        if host.contains(":") || bracketed {
            // An IPv6 address: hex groups and colons, optionally an embedded IPv4 address; the resolver checks it fully.
            let allowed = host.unicodeScalars.allSatisfy { $0.properties.isASCIIHexDigit || $0 == ":" || $0 == "." }
            return allowed && host.contains(":") && host.count >= 2 && host.count <= 45 ? host : nil
        }
        if host.hasSuffix(".") { host.removeLast() }
        if isIPv4(host) { return host }
        // One label is fine for a host ("postfix" in a compose file); all digits would be a malformed address.
        guard RouteDomainPattern.isDomainName(host, minimumLabels: 1), host.contains(where: { !$0.isNumber && $0 != "." }) else { return nil }
        return host
    }

    private static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isNumber) && (part.count == 1 || part.first != "0")
                && Int(part).map { $0 <= 255 } == true
        }
    }

    /// What is wrong with a route's settings, as (field, message), or nil when they fit together: the user name
    /// and password come together, and never with `tls` none (AUTH goes only over TLS).
    public static func credentialProblem(username: String?, password: String?, tls: RouteTLS) -> (field: String, message: String)? {
        switch (username, password) {
        case (.some, nil):
            return ("password", "password is required with username")
        case (nil, .some):
            return ("username", "username is required with password")
        case (.some, .some) where tls == .none:
            return ("tls", "credentials are sent only over TLS: use tls \"starttls\" or \"implicit\" with a username and password")
        default:
            return nil
        }
    }
}
