import Crypto
import _CryptoExtras
import Foundation

/// A DKIM signing key: RSA-2048 or Ed25519, parsed once so that signing many messages never re-reads it.
public struct DKIMPrivateKey: Sendable {
    /// The swift-crypto key object, held parsed.
    enum Backing: Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case ed25519(Ed25519Key)
    }

    /// swift-crypto 3.12 does not mark Curve25519.Signing.PrivateKey Sendable, though it is a value type whose
    /// storage (the expanded key in SecureBytes and the public key bytes) is written once in init and only read
    /// when signing; sharing it between threads is therefore safe.
    struct Ed25519Key: @unchecked Sendable {
        let key: Curve25519.Signing.PrivateKey
    }

    /// Which algorithm this key signs with.
    public let algorithm: DKIMAlgorithm
    let backing: Backing

    private init(_ backing: Backing) {
        self.backing = backing
        switch backing {
        case .rsa: algorithm = .rsaSHA256
        case .ed25519: algorithm = .ed25519SHA256
        }
    }

    /// RSA-2048 or Ed25519, freshly generated.
    public static func generate(_ algorithm: DKIMAlgorithm) throws -> DKIMPrivateKey {
        switch algorithm {
        case .rsaSHA256:
            do {
                return DKIMPrivateKey(.rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048)))
            } catch {
                throw DKIMError(.invalidPrivateKey, "could not generate an RSA-2048 DKIM key: \(error)")
            }
        case .ed25519SHA256:
            return DKIMPrivateKey(.ed25519(Ed25519Key(key: Curve25519.Signing.PrivateKey())))
        }
    }

    /// The inverse of `serialized` (RSA: PKCS#8 DER; Ed25519: the 32-byte seed / rawRepresentation). Throws DKIMError on garbage.
    ///
    /// RSA keys shorter than 2048 bits are refused (RFC 8301 §3.2: signers SHOULD use at least 2048).
    public init(algorithm: DKIMAlgorithm, serialized: [UInt8]) throws {
        switch algorithm {
        case .rsaSHA256:
            let key: _RSA.Signing.PrivateKey
            do {
                key = try _RSA.Signing.PrivateKey(derRepresentation: serialized)
            } catch {
                throw DKIMError(.invalidPrivateKey,
                                "not an RSA DKIM private key: expected PKCS#8 DER of 2048 bits or more (\(serialized.count) bytes given)")
            }
            self.init(.rsa(key))
        case .ed25519SHA256:
            guard serialized.count == 32, let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: serialized) else {
                throw DKIMError(.invalidPrivateKey,
                                "not an Ed25519 DKIM private key: expected the 32-byte seed (\(serialized.count) bytes given)")
            }
            self.init(.ed25519(Ed25519Key(key: key)))
        }
    }

    /// An RSA key of 1024 bits or more from PEM (PKCS#1 or PKCS#8), for the RFC 8463 known-answer test, whose
    /// example key has 1024 bits. Not for production keys: `init(algorithm:serialized:)` insists on 2048.
    package init(unsafeRSAPEM pem: String) throws {
        do {
            self.init(.rsa(try _RSA.Signing.PrivateKey(unsafePEMRepresentation: pem)))
        } catch {
            throw DKIMError(.invalidPrivateKey, "not an RSA private key in PEM: \(error)")
        }
    }

    /// The form to store (sealed) and to pass back to `init(algorithm:serialized:)`: RSA PKCS#8 DER; Ed25519 the
    /// 32-byte seed.
    public var serialized: [UInt8] {
        switch backing {
        case .rsa(let key):
            // swift-crypto gives PKCS#8 only as PEM (its derRepresentation is PKCS#1), so take the DER out of it.
            return Self.derFromPEM(key.pkcs8PEMRepresentation)
        case .ed25519(let ed25519):
            return Array(ed25519.key.rawRepresentation)
        }
    }

    /// The p= value: RSA SubjectPublicKeyInfo DER in base64; Ed25519 the raw 32-byte public key in base64 (RFC 8463 §4.2).
    public var publicKeyBase64: String {
        switch backing {
        case .rsa(let key):
            // derRepresentation of an RSA public key is SubjectPublicKeyInfo (RFC 6376 §3.6.1).
            return key.publicKey.derRepresentation.base64EncodedString()
        case .ed25519(let ed25519):
            return ed25519.key.publicKey.rawRepresentation.base64EncodedString()
        }
    }

    /// The TXT record value to publish: "v=DKIM1; k=rsa; p=…" or "v=DKIM1; k=ed25519; p=…".
    ///
    /// An RSA-2048 record is about 410 characters: zone files must split it into character-strings of at most
    /// 255, which resolvers join again (RFC 6376 §3.6.2.2).
    public var dnsRecord: String {
        "v=DKIM1; k=\(algorithm.keyType); p=\(publicKeyBase64)"
    }

    /// Signs the SHA-256 digest of the canonicalised header data. RSA: PKCS#1 v1.5 over the digest (RFC 6376
    /// §3.3.1). Ed25519: PureEdDSA over the 32 digest bytes themselves, not over the data (RFC 8463 §3).
    func sign(headerHash: SHA256.Digest) throws -> [UInt8] {
        do {
            switch backing {
            case .rsa(let key):
                // PKCS#1 v1.5 is what DKIM mandates; swift-crypto names it "insecure" only to steer new protocols to PSS.
                return Array(try key.signature(for: headerHash, padding: .insecurePKCS1v1_5).rawRepresentation)
            case .ed25519(let ed25519):
                return Array(try ed25519.key.signature(for: Array(headerHash)))
            }
        } catch {
            throw DKIMError(.signingFailed, "\(algorithm.rawValue) signing failed: \(error)")
        }
    }

    /// The DER inside a PEM document: the base64 lines between the BEGIN and END lines.
    private static func derFromPEM(_ pem: String) -> [UInt8] {
        let body = pem.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }.joined()
        // swift-crypto wrote this PEM itself, so it always decodes.
        return Array(Data(base64Encoded: body) ?? Data())
    }
}
