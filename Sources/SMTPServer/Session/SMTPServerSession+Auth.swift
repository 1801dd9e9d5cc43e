import SMTPCore

// AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) mechanisms.
extension SMTPServerSession {
    /// `AUTH mechanism [initial-response]`.
    mutating func auth(mechanism: String, initialResponse: String?) -> Action {
        guard !isInbound else { return refuse(Replies.notImplemented) }
        guard facts.heloName != nil else { return refuse(Replies.sendHeloFirst) }
        guard facts.principal == nil || facts.trustedByAddress else { return refuse(Replies.authAlready) }
        guard transaction == nil else { return refuse(Replies.authInTransaction) }
        // RFC 4954 §4, §6: credentials never travel in clear text.
        guard facts.tlsActive || !configuration.requiresTLSForAuth else { return refuse(Replies.authNeedsTLS) }
        switch mechanism {
        case "PLAIN":
            guard let initialResponse else {
                state = .authExchange(.plain)
                return .reply(Replies.authChallengeEmpty)
            }
            return authResponse(Array(initialResponse.utf8), exchange: .plain)
        case "LOGIN":
            guard let initialResponse else {
                state = .authExchange(.loginUsername)
                return .reply(Replies.authUsername)
            }
            return authResponse(Array(initialResponse.utf8), exchange: .loginUsername)
        default:
            return refuse(Replies.authUnknownMechanism)
        }
    }

    /// The client's answer to a 334 challenge (or the initial response). The state is `.command` on entry.
    mutating func authResponse(_ line: [UInt8], exchange: AuthExchange) -> Action {
        // RFC 4954 §4: "*" cancels the exchange, answered with 501.
        if line == [UInt8(ascii: "*")] { return refuse(Replies.authCancelled) }
        guard let decoded = AuthBase64.decode(line) else { return refuse(Replies.authBadBase64) }
        switch exchange {
        case .plain:
            // RFC 4616 §2: [authzid] NUL authcid NUL passwd.
            let parts = decoded.split(separator: 0, omittingEmptySubsequences: false)
            guard parts.count == 3,
                  let authzid = String(validating: parts[0], as: UTF8.self),
                  let username = String(validating: parts[1], as: UTF8.self),
                  let password = String(validating: parts[2], as: UTF8.self),
                  !username.isEmpty, !password.isEmpty
            else { return refuse(Replies.authMalformed) }
            // Acting as another identity (proxy authorization) is not supported.
            guard authzid.isEmpty || authzid == username else { return refuse(Replies.authFailed) }
            state = .authenticating
            return .authenticate(username: username, password: password)
        case .loginUsername:
            guard let username = String(validating: decoded, as: UTF8.self), !decoded.contains(0) else {
                return refuse(Replies.authMalformed)
            }
            state = .authExchange(.loginPassword(username: username))
            return .reply(Replies.authPassword)
        case .loginPassword(let username):
            guard let password = String(validating: decoded, as: UTF8.self), !decoded.contains(0) else {
                return refuse(Replies.authMalformed)
            }
            state = .authenticating
            return .authenticate(username: username, password: password)
        }
    }
}

extension SMTPServerSession {
/// Strict base64 (RFC 4648 §4) for SASL responses: the standard alphabet, no whitespace, padding optional
/// but only at the end.
enum AuthBase64 {
    static func decode(_ text: [UInt8]) -> [UInt8]? {
        var input = text[...]
        var padding = 0
        while input.last == UInt8(ascii: "=") {
            input.removeLast()
            padding += 1
        }
        guard padding <= 2 else { return nil }
        if padding > 0, (input.count + padding) % 4 != 0 { return nil }
        guard input.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for character in input {
            guard let value = sextet(character) else { return nil }
            accumulator = (accumulator << 6) | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // Leftover bits must be zero (canonical encoding).
        if bits > 0, accumulator & ((1 << UInt32(bits)) - 1) != 0 { return nil }
        return output
    }

    private static func sextet(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): character - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): character - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}
}
