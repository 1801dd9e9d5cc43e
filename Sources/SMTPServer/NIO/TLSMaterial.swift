import Crypto
import Foundation
import Logging
import NIOSSL
import Synchronization
import X509

/// The certificate and key the submission listeners present, as a TLS 1.2+ server context.
///
/// Either PEM files named by the operator (`RELAY_TLS_CERT` / `RELAY_TLS_KEY`), re-read by ``reload()`` on SIGHUP,
/// or — when neither is given — a self-signed ECDSA P-256 certificate for `hostname`, generated once into
/// `generatedDirectory` and reused on restart (generated again when it is missing, unreadable, for another host
/// name or within a day of expiring). Each new TLS handshake uses the ``serverContext`` current at that moment,
/// so a reload never disturbs sessions already running.
public final class TLSMaterial: Sendable {
    /// How long a generated certificate is valid.
    static let generatedValidity: TimeInterval = 825 * 24 * 3600

    private let certificatePath: String
    private let keyPath: String
    private let generated: Bool
    private let logger: Logger
    private let context: Mutex<NIOSSLContext>

    /// Loads the PEM files at `certificatePath` and `keyPath` (both or neither), or generates (or reuses) a
    /// self-signed certificate for `hostname` in `generatedDirectory` when both are nil. Throws a
    /// ``TLSMaterialError`` that names the file and the step that failed.
    public init(certificatePath: String?, keyPath: String?, hostname: String, generatedDirectory: String, logger: Logger) throws {
        self.logger = logger
        switch (certificatePath, keyPath) {
        case let (certificatePath?, keyPath?):
            self.certificatePath = certificatePath
            self.keyPath = keyPath
            self.generated = false
        case (nil, nil):
            let base = (generatedDirectory as NSString).appendingPathComponent("selfsigned-\(Self.fileSafe(hostname))")
            self.certificatePath = base + "-cert.pem"
            self.keyPath = base + "-key.pem"
            self.generated = true
            try Self.ensureSelfSigned(hostname: hostname, directory: generatedDirectory,
                                      certificatePath: self.certificatePath, keyPath: self.keyPath, logger: logger)
        default:
            throw TLSMaterialError("a TLS certificate and key must be given together (RELAY_TLS_CERT and RELAY_TLS_KEY)")
        }
        self.context = Mutex(try Self.makeContext(certificatePath: self.certificatePath, keyPath: self.keyPath))
        logger.info("TLS certificate loaded", metadata: [
            "tls.certificate": "\(self.certificatePath)", "tls.self_signed": "\(generated)",
        ])
    }

    /// The context for the next handshake.
    public var serverContext: NIOSSLContext {
        context.withLock { $0 }
    }

    /// Re-reads the certificate and key files; on any error the current context stays in use and the error is thrown.
    public func reload() throws {
        let fresh = try Self.makeContext(certificatePath: certificatePath, keyPath: keyPath)
        context.withLock { $0 = fresh }
        logger.info("TLS certificate reloaded", metadata: ["tls.certificate": "\(certificatePath)"])
    }

    /// The certificate file in use (the generated one when none was configured).
    public var certificateFile: String { certificatePath }

    private static func makeContext(certificatePath: String, keyPath: String) throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw TLSMaterialError("cannot read the TLS certificate \(certificatePath): \(error)")
        }
        guard !chain.isEmpty else { throw TLSMaterialError("no certificate in \(certificatePath)") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw TLSMaterialError("cannot read the TLS private key \(keyPath): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = .tlsv12
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSMaterialError("cannot use the TLS certificate \(certificatePath) with the key \(keyPath): \(error)")
        }
    }

    private static func fileSafe(_ hostname: String) -> String {
        String(hostname.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" })
    }

    /// Keeps an existing generated certificate when it is still good for `hostname`; otherwise generates one.
    private static func ensureSelfSigned(hostname: String, directory: String, certificatePath: String, keyPath: String,
                                         logger: Logger) throws {
        if let existing = try? String(contentsOfFile: certificatePath, encoding: .utf8),
           FileManager.default.fileExists(atPath: keyPath),
           let certificate = try? Certificate(pemEncoded: existing),
           certificate.notValidAfter > Date().addingTimeInterval(24 * 3600),
           let names = try? certificate.extensions.subjectAlternativeNames,
           names.contains(where: { name in
               if case .dnsName(let dns) = name { return dns.lowercased() == hostname.lowercased() }
               return false
           }) {
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let key = P256.Signing.PrivateKey()
            let name = try DistinguishedName { CommonName(hostname) }
            let now = Date()
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: Certificate.PublicKey(key.publicKey),
                notValidBefore: now.addingTimeInterval(-3600),
                notValidAfter: now.addingTimeInterval(generatedValidity),
                issuer: name,
                subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([.serverAuth])
                    SubjectAlternativeNames([.dnsName(hostname)])
                },
                issuerPrivateKey: Certificate.PrivateKey(key)
            )
            let certificatePEM = try certificate.serializeAsPEM().pemString + "\n"
            // The key first, readable by the owner only, so a certificate never exists without its key.
            try write(key.pemRepresentation + "\n", to: keyPath, permissions: 0o600)
            try write(certificatePEM, to: certificatePath, permissions: 0o644)
        } catch let error as TLSMaterialError {
            throw error
        } catch {
            throw TLSMaterialError("cannot generate a self-signed certificate for \(hostname) in \(directory): \(error)")
        }
        logger.notice("generated a self-signed TLS certificate; set RELAY_TLS_CERT and RELAY_TLS_KEY to use your own", metadata: [
            "tls.hostname": "\(hostname)", "tls.certificate": "\(certificatePath)",
        ])
    }

    private static func write(_ text: String, to path: String, permissions: Int) throws {
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8),
                                             attributes: [.posixPermissions: permissions]) else {
            throw TLSMaterialError("cannot write \(temporary)")
        }
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: temporary, toPath: path)
    }
}

/// A TLS certificate or key that could not be read, generated or used; the message names the file.
public struct TLSMaterialError: Error, Sendable, CustomStringConvertible {
    /// What failed, for the operator.
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}
