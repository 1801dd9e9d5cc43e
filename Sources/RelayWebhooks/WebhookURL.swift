import Foundation

/// A webhook endpoint URL that passed the syntax rules: http or https, a host, no user information.
public struct WebhookURL: Sendable, Hashable {
    /// The longest URL accepted.
    public static let maximumLength = 2048

    public let text: String
    public let isHTTPS: Bool
    /// The host without IPv6 brackets.
    public let host: String
    public let port: Int

    /// Why a URL was refused, as a sentence for the API's `validation_failed` message.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Checks the syntax; address checks come after (see `WebhookTargetCheck`).
    public init(_ text: String) throws(Problem) {
        guard !text.isEmpty, text.utf8.count <= Self.maximumLength,
              !text.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } == true }),
              let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw Problem("url must be an absolute http:// or https:// URL of at most \(Self.maximumLength) characters")
        }
        guard scheme == "http" || scheme == "https" else { throw Problem("url must use http or https, not \(scheme)") }
        guard components.percentEncodedUser == nil, components.percentEncodedPassword == nil,
              !(components.percentEncodedHost ?? "").contains("@") else {
            throw Problem("url must not contain a user name or password")
        }
        var host = components.host ?? ""
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw Problem("url must name a host") }
        self.text = text
        self.isHTTPS = scheme == "https"
        self.host = host
        self.port = components.port ?? (isHTTPS ? 443 : 80)
    }
}
