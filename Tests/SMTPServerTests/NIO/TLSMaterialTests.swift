import Foundation
import Logging
import NIOSSL
import ServiceLifecycle
import Testing
import SMTPServer

@Suite("TLS material")
struct TLSMaterialTests {
    private let logger = Logger(label: "relay.smtp.test.tls")

    private func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "relay-tls-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func generatesASelfSignedCertificateOnceAndReusesIt() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try TLSMaterial(certificatePath: nil, keyPath: nil, hostname: "mail.example.test",
                                    generatedDirectory: directory, logger: logger)
        let pem = try String(contentsOfFile: first.certificateFile, encoding: .utf8)
        #expect(pem.hasPrefix("-----BEGIN CERTIFICATE-----"))
        let keyFile = first.certificateFile.replacingOccurrences(of: "-cert.pem", with: "-key.pem")
        let attributes = try FileManager.default.attributesOfItem(atPath: keyFile)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        let second = try TLSMaterial(certificatePath: nil, keyPath: nil, hostname: "mail.example.test",
                                     generatedDirectory: directory, logger: logger)
        #expect(try String(contentsOfFile: second.certificateFile, encoding: .utf8) == pem)

        // Another host name gets its own certificate.
        let other = try TLSMaterial(certificatePath: nil, keyPath: nil, hostname: "other.example.test",
                                    generatedDirectory: directory, logger: logger)
        #expect(other.certificateFile != first.certificateFile)
    }

    @Test func loadsConfiguredFilesAndKeepsTheOldContextWhenAReloadFails() throws {
        let generated = temporaryDirectory()
        let configured = temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(atPath: generated)
            try? FileManager.default.removeItem(atPath: configured)
        }
        let source = try TLSMaterial(certificatePath: nil, keyPath: nil, hostname: "relay.test",
                                     generatedDirectory: generated, logger: logger)
        let certificate = configured + "/cert.pem"
        let key = configured + "/key.pem"
        try FileManager.default.copyItem(atPath: source.certificateFile, toPath: certificate)
        try FileManager.default.copyItem(atPath: source.certificateFile.replacingOccurrences(of: "-cert.pem", with: "-key.pem"),
                                         toPath: key)

        let material = try TLSMaterial(certificatePath: certificate, keyPath: key, hostname: "ignored",
                                       generatedDirectory: generated, logger: logger)
        let before = material.serverContext
        try material.reload()
        #expect(material.serverContext !== before)

        let current = material.serverContext
        try "not a certificate".write(toFile: certificate, atomically: true, encoding: .utf8)
        #expect(throws: TLSMaterialError.self) { try material.reload() }
        #expect(material.serverContext === current)

        #expect(throws: TLSMaterialError.self) {
            try TLSMaterial(certificatePath: certificate, keyPath: nil, hostname: "x", generatedDirectory: generated, logger: logger)
        }
        #expect(throws: TLSMaterialError.self) {
            try TLSMaterial(certificatePath: configured + "/missing.pem", keyPath: key, hostname: "x",
                            generatedDirectory: generated, logger: logger)
        }
    }
}

@Suite("TLS reload on SIGHUP")
struct TLSReloadServiceTests {
    @Test func sighupReloadsTheCertificateFiles() async throws {
        let logger = Logger(label: "relay.smtp.test.tls")
        let directory = NSTemporaryDirectory() + "relay-tls-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try TLSMaterial(certificatePath: nil, keyPath: nil, hostname: "one.test", generatedDirectory: directory, logger: logger)
        let second = try TLSMaterial(certificatePath: nil, keyPath: nil, hostname: "two.test", generatedDirectory: directory, logger: logger)
        func keyFile(_ material: TLSMaterial) -> String {
            material.certificateFile.replacingOccurrences(of: "-cert.pem", with: "-key.pem")
        }
        let certificate = directory + "/live-cert.pem"
        let key = directory + "/live-key.pem"
        try FileManager.default.copyItem(atPath: first.certificateFile, toPath: certificate)
        try FileManager.default.copyItem(atPath: keyFile(first), toPath: key)
        let material = try TLSMaterial(certificatePath: certificate, keyPath: key, hostname: "x", generatedDirectory: directory, logger: logger)
        let original = material.serverContext

        // A renewed certificate is put in place, then the process gets SIGHUP.
        try FileManager.default.removeItem(atPath: certificate)
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.copyItem(atPath: second.certificateFile, toPath: certificate)
        try FileManager.default.copyItem(atPath: keyFile(second), toPath: key)

        // SIGHUP is ignored before the service traps it, so a signal sent too early cannot end the test process.
        signal(SIGHUP, SIG_IGN)
        let service = TLSReloadService(materials: [material], logger: logger)
        let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // A generous limit: on a loaded machine the service may take seconds to install its handler.
            let deadline = ContinuousClock.now + .seconds(60)
            while material.serverContext === original, ContinuousClock.now < deadline {
                kill(getpid(), SIGHUP)
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(material.serverContext !== original, "SIGHUP did not reload the certificate")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
