/// A failed DNS lookup or an undecodable message, with a code that says whether retrying later may help.
///
/// Modelled as a struct with an extensible ``Code`` so that new codes break no `switch` in callers.
public struct DNSError: Error, Sendable, CustomStringConvertible {
    /// What went wrong; compare against the `static let` values.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case timeout, serverFailure, refused, malformedResponse, nxdomain, ioError, invalidName
        }
        private let base: Base

        /// No server answered within the per-attempt timeout on any attempt.
        public static let timeout = Code(base: .timeout)
        /// The servers answered SERVFAIL (or another rcode that signals a server-side problem).
        public static let serverFailure = Code(base: .serverFailure)
        /// The servers answered REFUSED.
        public static let refused = Code(base: .refused)
        /// A message could not be decoded (RFC 1035 §4 violated).
        public static let malformedResponse = Code(base: .malformedResponse)
        /// The name does not exist. `DNSResolver.query` returns NXDOMAIN as a result; this code is for callers
        /// that want to throw it.
        public static let nxdomain = Code(base: .nxdomain)
        /// A socket could not be opened, written or read.
        public static let ioError = Code(base: .ioError)
        /// The name asked for is not a valid domain name (empty label, label over 63 octets, name over 255).
        public static let invalidName = Code(base: .invalidName)

        /// The code's name, e.g. "timeout".
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// The name that was being looked up, if any.
    public var name: String?
    /// The record type that was being looked up, if any.
    public var type: DNSRecordType?
    /// A human phrase with the detail (which server, which field was malformed).
    public var detail: String?

    /// Creates an error.
    public init(code: Code, name: String? = nil, type: DNSRecordType? = nil, detail: String? = nil) {
        self.code = code
        self.name = name
        self.type = type
        self.detail = detail
    }

    /// Whether the failure may go away by itself, so mail should be deferred rather than bounced.
    ///
    /// RFC 5321 §5.1: only a definitive answer (NXDOMAIN, or a name that is invalid) is permanent; a server that
    /// fails, refuses, times out or sends garbage leaves the question open.
    public var isTemporary: Bool {
        switch code {
        case .nxdomain, .invalidName: false
        default: true
        }
    }

    /// e.g. "DNS timeout looking up MX example.com: no answer from 127.0.0.1:53".
    public var description: String {
        var text = "DNS \(code)"
        if let name {
            text += " looking up \(type.map { "\($0) " } ?? "")\(name)"
        }
        if let detail { text += ": \(detail)" }
        return text
    }
}
