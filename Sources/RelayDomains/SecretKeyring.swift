import Crypto
import DKIM
import Foundation
import RelayStore

/// Seals and opens secrets kept in the database (DKIM private keys, smarthost passwords) with AES-GCM, under
/// `RELAY_SECRET_KEY` or, without it, under the cluster's `dkim-database` secret (which keeps a secret out of plain
/// sight in dumps and logs but not from someone holding the whole database — production sets RELAY_SECRET_KEY).
/// Each sealed value records which of the two sealed it (`sealed_with`), so setting RELAY_SECRET_KEY later keeps
/// older values usable.
public struct SecretKeyring: Sendable {
    /// `sealed_with` of values sealed under the database secret.
    public static let databaseKeyName = "database"

    private let configured: (name: String, box: SecretKeyBox)?
    private let database: SecretKeyBox

    /// `secretKeyBase64`: RELAY_SECRET_KEY (32 bytes in base64) or nil; `databaseKey`: the `dkim-database` secret.
    public init(secretKeyBase64: String?, databaseKey: [UInt8]) throws {
        if let secretKeyBase64 {
            let box = try SecretKeyBox(base64Key: secretKeyBase64)
            let raw = Data(base64Encoded: secretKeyBase64) ?? Data()
            let fingerprint = SHA256.hash(data: raw).prefix(6).map { String(format: "%02x", $0) }.joined()
            configured = ("env:\(fingerprint)", box)
        } else {
            configured = nil
        }
        database = try SecretKeyBox(base64Key: Data(databaseKey.prefix(32)).base64EncodedString())
    }

    /// Whether RELAY_SECRET_KEY seals new values.
    public var usesConfiguredKey: Bool { configured != nil }

    /// Seals `plaintext` bound to `context` (authenticated, not stored: a value copied to another row no longer
    /// opens); returns the sealed bytes and the `sealed_with` name to store beside them.
    public func seal(_ plaintext: [UInt8], context: String) throws -> (sealed: [UInt8], sealedWith: String) {
        let (name, box) = configured ?? (Self.databaseKeyName, database)
        return (try box.seal(plaintext, context: context), name)
    }

    /// Opens a value sealed by ``seal(_:context:)``; `what` names it in the error when the key that sealed it is
    /// not available (RELAY_SECRET_KEY changed). Throws when the bytes were altered.
    public func open(_ sealed: [UInt8], sealedWith: String, context: String, what: String) throws -> [UInt8] {
        let box: SecretKeyBox
        if sealedWith == Self.databaseKeyName {
            box = database
        } else if let configured, configured.name == sealedWith {
            box = configured.box
        } else {
            throw DKIMKeyringError("\(what) was sealed with another RELAY_SECRET_KEY (\(sealedWith)); restore that key")
        }
        return try box.open(sealed, context: context)
    }
}

extension SecretKeyring {
    /// Seals a smarthost route's password, bound to the route's id.
    public func sealRoutePassword(_ password: String, routeID: UUID) throws -> (sealed: [UInt8], sealedWith: String) {
        try seal(Array(password.utf8), context: Self.routeContext(routeID))
    }

    /// The password of a stored route (nil when it has none).
    public func routePassword(of route: StoredSMTPRoute) throws -> String? {
        guard let sealed = route.sealedPassword, let sealedWith = route.sealedWith else { return nil }
        let bytes = try open(sealed, sealedWith: sealedWith, context: Self.routeContext(route.id),
                             what: "the password of the route for \(route.domainPattern)")
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func routeContext(_ id: UUID) -> String {
        "smtp-route:\(id.uuidString.lowercased())"
    }
}
