import _CryptoExtras
import DKIM
import Foundation
import Testing

/// DKIMPrivateKey: generation, the serialized round trip, the published record.
@Suite struct DKIMPrivateKeyTests {
    @Test(arguments: DKIMAlgorithm.allCases)
    func serializedRoundTrip(_ algorithm: DKIMAlgorithm) throws {
        let key = try DKIMPrivateKey.generate(algorithm)
        #expect(key.algorithm == algorithm)
        let again = try DKIMPrivateKey(algorithm: algorithm, serialized: key.serialized)
        #expect(again.serialized == key.serialized)
        #expect(again.publicKeyBase64 == key.publicKeyBase64)
    }

    @Test func ed25519SerializesAsTheSeed() throws {
        let key = try DKIMPrivateKey.generate(.ed25519SHA256)
        #expect(key.serialized.count == 32)
        #expect(Data(base64Encoded: key.publicKeyBase64)?.count == 32)
        #expect(key.dnsRecord == "v=DKIM1; k=ed25519; p=\(key.publicKeyBase64)")
    }

    @Test func rsaIs2048BitsPKCS8AndSPKI() throws {
        let key = try DKIMPrivateKey.generate(.rsaSHA256)
        // PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER 0, AlgorithmIdentifier { rsaEncryption … }, OCTET STRING }.
        let rsaEncryption: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
        #expect(key.serialized.first == 0x30)
        #expect(Array(key.serialized[4..<7]) == [0x02, 0x01, 0x00])
        #expect(key.serialized.firstRange(of: rsaEncryption) != nil)
        let publicDER = try #require(Data(base64Encoded: key.publicKeyBase64))
        let publicKey = try _RSA.Signing.PublicKey(derRepresentation: publicDER)
        #expect(publicKey.keySizeInBits == 2048)
        // SubjectPublicKeyInfo (not bare PKCS#1): it names the algorithm.
        #expect(Array(publicDER).firstRange(of: rsaEncryption) != nil)
        #expect(key.dnsRecord == "v=DKIM1; k=rsa; p=\(key.publicKeyBase64)")
    }

    @Test(arguments: [
        (DKIMAlgorithm.ed25519SHA256, [UInt8](repeating: 1, count: 31)),
        (.ed25519SHA256, [UInt8](repeating: 1, count: 64)),
        (.rsaSHA256, [UInt8]()),
        (.rsaSHA256, Array("not a key".utf8)),
        (.rsaSHA256, [UInt8](repeating: 1, count: 32)),
    ])
    func garbageIsRefused(_ algorithm: DKIMAlgorithm, _ bytes: [UInt8]) {
        let error = #expect(throws: DKIMError.self) { try DKIMPrivateKey(algorithm: algorithm, serialized: bytes) }
        #expect(error?.code == .invalidPrivateKey)
    }

    @Test func rsaKeyOfTheOtherAlgorithmIsRefused() throws {
        let ed25519 = try DKIMPrivateKey.generate(.ed25519SHA256)
        #expect(throws: DKIMError.self) { try DKIMPrivateKey(algorithm: .rsaSHA256, serialized: ed25519.serialized) }
    }
}

/// SecretKeyBox: AES-GCM at rest under RELAY_SECRET_KEY.
@Suite struct SecretKeyBoxTests {
    let box: SecretKeyBox

    init() throws {
        box = try SecretKeyBox(base64Key: SecretKeyBox.generateKeyBase64())
    }

    @Test func roundTrip() throws {
        let secret = Array("a private key".utf8)
        let sealed = try box.seal(secret, context: "dkim:example.com:relay202611r")
        // nonce (12) ‖ ciphertext ‖ tag (16)
        #expect(sealed.count == 12 + secret.count + 16)
        #expect(sealed.firstRange(of: secret) == nil)
        #expect(try box.open(sealed, context: "dkim:example.com:relay202611r") == secret)
        // A fresh nonce each time.
        #expect(try box.seal(secret, context: "c") != box.seal(secret, context: "c"))
    }

    @Test func emptyPlaintextRoundTrips() throws {
        #expect(try box.open(box.seal([], context: "c"), context: "c") == [])
    }

    @Test func wrongContextFails() throws {
        let sealed = try box.seal([1, 2, 3], context: "dkim:example.com:relay202611r")
        let error = #expect(throws: DKIMError.self) { try box.open(sealed, context: "dkim:example.org:relay202611r") }
        #expect(error?.code == .sealedData)
    }

    @Test func wrongKeyFails() throws {
        let sealed = try box.seal([1, 2, 3], context: "c")
        let other = try SecretKeyBox(base64Key: SecretKeyBox.generateKeyBase64())
        let error = #expect(throws: DKIMError.self) { try other.open(sealed, context: "c") }
        #expect(error?.description.contains("RELAY_SECRET_KEY") == true)
    }

    @Test func damagedDataFails() throws {
        var sealed = try box.seal([1, 2, 3], context: "c")
        sealed[13] ^= 0x01
        #expect(throws: DKIMError.self) { try box.open(sealed, context: "c") }
        #expect(throws: DKIMError.self) { try box.open([1, 2, 3], context: "c") }
    }

    @Test func generatedKeysAre32RandomBytes() {
        let one = SecretKeyBox.generateKeyBase64()
        #expect(Data(base64Encoded: one)?.count == 32)
        #expect(one != SecretKeyBox.generateKeyBase64())
    }

    @Test func surroundingWhitespaceIsTolerated() throws {
        // Environment files and secret stores often leave a newline behind.
        _ = try SecretKeyBox(base64Key: " " + SecretKeyBox.generateKeyBase64() + "\n")
    }

    @Test(arguments: [
        "",
        "not base64 at all!",
        Data(repeating: 7, count: 16).base64EncodedString(),
        Data(repeating: 7, count: 33).base64EncodedString(),
        String(repeating: "A", count: 43),
    ])
    func badKeysGiveTheClearError(_ value: String) {
        let error = #expect(throws: DKIMError.self) { try SecretKeyBox(base64Key: value) }
        #expect(error?.code == .invalidSecretKey)
        #expect(error?.description.contains("RELAY_SECRET_KEY") == true)
        #expect(error?.description.contains("32 random bytes in base64") == true)
        // The value is a secret: the message never repeats it.
        if !value.isEmpty { #expect(error?.description.contains(value) == false) }
    }
}
