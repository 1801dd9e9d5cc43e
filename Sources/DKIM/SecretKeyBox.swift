import Crypto
import Foundation

/// AES-GCM (swift-crypto) sealing of private keys at rest under RELAY_SECRET_KEY.
///
/// AES-256-GCM with a fresh random 96-bit nonce per seal. The context string is authenticated but not stored, so
/// a sealed key copied to another row (another domain or selector) no longer opens.
public struct SecretKeyBox: Sendable {
    // The raw bytes, not a SymmetricKey: swift-crypto 3.12's SymmetricKey is not Sendable, and building one per
    // call costs a copy of 32 bytes.
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// A 32-byte key given in base64; anything else throws DKIMError with a message naming RELAY_SECRET_KEY and the expected form.
    public init(base64Key: String) throws {
        let trimmed = base64Key.trimmingCharacters(in: .whitespacesAndNewlines)
        // The message never repeats the value: it is a secret, even when malformed.
        guard let bytes = Data(base64Encoded: trimmed) else {
            throw DKIMError(.invalidSecretKey,
                            "RELAY_SECRET_KEY is not valid base64: it must be 32 random bytes in base64 (44 characters, e.g. `openssl rand -base64 32`)")
        }
        guard bytes.count == 32 else {
            throw DKIMError(.invalidSecretKey,
                            "RELAY_SECRET_KEY decodes to \(bytes.count) bytes: it must be 32 random bytes in base64 (44 characters, e.g. `openssl rand -base64 32`)")
        }
        keyBytes = Array(bytes)
    }

    /// A fresh random key in base64 (for the managed mode and docs).
    public static func generateKeyBase64() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
    }

    /// AES.GCM combined form (nonce ‖ ciphertext ‖ tag); `context` (e.g. "dkim:example.com:relay202611r") is authenticated associated data.
    public func seal(_ plaintext: [UInt8], context: String) throws -> [UInt8] {
        do {
            let box = try AES.GCM.seal(plaintext, using: key, authenticating: Array(context.utf8))
            // combined is nil only for nonces other than 12 bytes; seal's own nonce is always 12.
            guard let combined = box.combined else {
                throw DKIMError(.sealedData, "AES-GCM produced no combined form")
            }
            return Array(combined)
        } catch let error as DKIMError {
            throw error
        } catch {
            throw DKIMError(.sealedData, "could not seal the secret for \(context): \(error)")
        }
    }

    /// The plaintext sealed by `seal(_:context:)` with the same key and context; throws DKIMError when the key or
    /// context differ or the data was damaged (AES-GCM cannot tell these apart).
    public func open(_ sealed: [UInt8], context: String) throws -> [UInt8] {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return Array(try AES.GCM.open(box, using: key, authenticating: Array(context.utf8)))
        } catch {
            throw DKIMError(.sealedData,
                            "could not open the sealed secret for \(context): RELAY_SECRET_KEY differs from the one that sealed it, or the data is damaged")
        }
    }
}
