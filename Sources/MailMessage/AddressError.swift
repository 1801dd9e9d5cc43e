/// Why an address or mailbox could not be parsed, as a message fit to show an API client
/// (for example `local part longer than 64 octets` or `invalid domain label "-x"`).
public struct AddressError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The human-readable reason, lower-case and without a trailing period.
    public var message: String

    /// Creates an error with the given human-readable reason.
    public init(_ message: String) {
        self.message = message
    }

    /// The same text as ``message``.
    public var description: String { message }
}
