import Foundation
import Testing

@testable import Bridge

/// `server.tls`, `server.ready_path` and `client_certificate_header`: read, checked at start-up (the files loaded as
/// the server loads them), and every problem reported with its file, line, column and key.
@Suite struct IngressTLSConfigurationTests {
    /// Test-only certificates (see TestPKI/README.md, `ingress/`).
    static let pki = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("TestPKI/ingress").path

    /// Parses a configuration whose file sits beside the test certificates (relative paths resolve there).
    func load(_ server: String, route: String = "") throws -> LoadedConfiguration {
        try BridgeConfiguration.parse(yaml: """
            server:
            \(server)
            routes:
              - path: /a
                topic: t
                bootstrap_servers: [k:1]
            \(route)
            """, file: "\(Self.pki)/kbridge.yaml")
    }

    func problems(_ server: String, route: String = "") -> [String] {
        do {
            _ = try load(server, route: route)
            return []
        } catch let error as ConfigurationError {
            return error.issues.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    /// A file in the temporary directory with `text`.
    func scratchFile(_ text: String) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-tls-\(UUID().uuidString).pem")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    @Test func aTLSSectionHasItsDefaults() throws {
        let server = try load("  tls: {certificate_file: server.crt, key_file: server.key}").configuration.server
        let tls = try #require(server.tls)
        #expect(tls.certificateFile == "\(Self.pki)/server.crt")
        #expect(tls.keyFile == "\(Self.pki)/server.key")
        #expect(tls.minimumVersion == .tls12)
        #expect(tls.alpn == ["http/1.1"])
        #expect(tls.clientCertificate == .none)
        #expect(tls.clientCAFile == nil)
        #expect(tls.handshakeTimeout == .seconds(10))
        #expect(server.readyPath == "/ready")
    }

    @Test func everyTLSKeyIsRead() throws {
        let tls = try #require(try load("""
              tls:
                certificate_file: server.crt
                key_file: server.key
                minimum_version: "1.3"
                alpn: [http/1.1, http/1.0]
                client_ca_file: ca.crt
                client_certificate: required
                handshake_timeout: 2500
            """).configuration.server.tls)
        #expect(tls.minimumVersion == .tls13)
        #expect(tls.alpn == ["http/1.1", "http/1.0"])
        #expect(tls.clientCAFile == "\(Self.pki)/ca.crt")
        #expect(tls.clientCertificate == .required)
        #expect(tls.handshakeTimeout == .milliseconds(2500))
    }

    @Test func noTLSWithoutTheSection() throws {
        #expect(try load("  port: 0").configuration.server.tls == nil)
    }

    @Test func clientCertificatesNeedACAFile() {
        #expect(problems("  tls: {certificate_file: server.crt, key_file: server.key, client_certificate: required}") == [
            "\(Self.pki)/kbridge.yaml:2:81: server.tls.client_ca_file: required with client_certificate: required (the CAs that vouch for client certificates)",
        ])
        #expect(problems("  tls: {certificate_file: server.crt, key_file: server.key, client_certificate: optional}").count == 1)
    }

    @Test func missingFilesAreNamedWithTheirKey() {
        #expect(problems("  tls: {certificate_file: nope.crt, key_file: server.key}") == [
            "\(Self.pki)/kbridge.yaml:2:27: server.tls.certificate_file: \(Self.pki)/nope.crt does not exist",
        ])
        #expect(problems("  tls: {key_file: server.key}") == ["\(Self.pki)/kbridge.yaml:2:8: server.tls.certificate_file: required key missing"])
        #expect(problems("  tls: {certificate_file: server.crt, key_file: server.key, client_certificate: optional, client_ca_file: gone.crt}")
            .first?.contains("server.tls.client_ca_file: \(Self.pki)/gone.crt does not exist") == true)
    }

    @Test func aFileThatIsNotPEMIsRefused() throws {
        let garbage = try scratchFile("not a certificate\n")
        let certificateProblems = problems("  tls: {certificate_file: \(garbage), key_file: server.key}")
        #expect(certificateProblems.count == 1)
        #expect(certificateProblems.first?.contains("server.tls.certificate_file: \(garbage) ") == true)
        let keyProblems = problems("  tls: {certificate_file: server.crt, key_file: \(garbage)}")
        #expect(keyProblems.count == 1)
        #expect(keyProblems.first?.contains("server.tls.key_file: \(garbage) is not an unencrypted PEM private key") == true)
        let caProblems = problems("  tls: {certificate_file: server.crt, key_file: server.key, client_certificate: required, client_ca_file: \(garbage)}")
        #expect(caProblems.count == 1)
        #expect(caProblems.first?.contains("server.tls.client_ca_file: \(garbage) ") == true)
    }

    @Test func aKeyThatIsNotTheCertificatesIsRefused() {
        #expect(problems("  tls: {certificate_file: server.crt, key_file: client.key}") == [
            "\(Self.pki)/kbridge.yaml:2:49: server.tls.key_file: the key in \(Self.pki)/client.key does not match the certificate in \(Self.pki)/server.crt",
        ])
    }

    @Test func unknownVersionsModesAndProtocolsAreRefused() {
        #expect(problems("  tls: {certificate_file: server.crt, key_file: server.key, minimum_version: \"1.1\"}") == [
            "\(Self.pki)/kbridge.yaml:2:78: server.tls.minimum_version: unknown version '1.1' (1.2 or 1.3)",
        ])
        #expect(problems("  tls: {certificate_file: server.crt, key_file: server.key, client_certificate: sometimes}").first?
            .contains("server.tls.client_certificate: unknown mode 'sometimes' (none, optional, required)") == true)
        #expect(problems("  tls: {certificate_file: server.crt, key_file: server.key, alpn: [spdy/3]}").first?
            .contains("server.tls.alpn[0]: kbridge serves HTTP/2 and HTTP/1.x: 'spdy/3' cannot be offered") == true)
        #expect(problems("  tls: {certificate_file: server.crt, key_file: server.key, handshake_timeout: 0}").first?
            .contains("server.tls.handshake_timeout: 0 is out of range 1...600000") == true)
        #expect(problems("  tls: {certificate_file: server.crt, key_file: server.key, ciphers: all}").first?
            .contains("server.tls.ciphers: unknown key") == true)
    }

    @Test func aCAFileWithoutClientCertificatesIsAWarning() throws {
        let loaded = try load("  tls: {certificate_file: server.crt, key_file: server.key, client_ca_file: ca.crt}")
        #expect(loaded.warnings.map(\.description).contains { $0.contains("server.tls.client_ca_file: has no effect with client_certificate: none") })
    }

    @Test func theClientCertificateHeaderNeedsClientCertificates() throws {
        #expect(problems("  port: 0", route: "    client_certificate_header: x-client-subject") == [
            "\(Self.pki)/kbridge.yaml:7:32: routes[0].client_certificate_header: needs server.tls with client_certificate: optional or required (no client certificate is asked for)",
        ])
        let route = try #require(try load("  tls: {certificate_file: server.crt, key_file: server.key, client_certificate: optional, client_ca_file: ca.crt}",
                                          route: "    client_certificate_header: x-client-subject").configuration.routes.first)
        #expect(route.clientCertificateHeader == "x-client-subject")
        #expect(problems("  port: 0", route: "    client_certificate_header: \"\"").first?.contains("must not be empty") == true)
    }

    @Test func theReadyPathIsConfigurableAndClaimed() throws {
        #expect(try load("  ready_path: /readyz").configuration.server.readyPath == "/readyz")
        #expect(try load("  ready_path: \"\"").configuration.server.readyPath == nil)
        #expect(problems("  ready_path: readyz").first?.contains("server.ready_path: must start with '/'") == true)
        #expect(problems("  ready_path: /a", route: "    methods: [GET]").first?.contains("GET /a is already served by server.ready_path") == true)
    }

    @Test func theClientIdentityIsTheSubjectAndTheAlternativeNames() throws {
        let pem = try String(contentsOfFile: "\(Self.pki)/client.crt", encoding: .utf8)
        let base64 = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        let der = try #require(Data(base64Encoded: base64))
        let identity = try #require(ClientCertificateIdentity(der: Array(der)))
        #expect(identity.subject == "CN=ingest-client,OU=Ingest,O=Example Corp,C=DE")
        #expect(identity.subjectAlternativeNames == [
            "DNS:client.example.com", "IP:10.0.0.7", "email:ops@example.com", "URI:spiffe://example.com/ingest",
        ])
        #expect(ClientCertificateIdentity(der: [0x30, 0x03, 0x02, 0x01, 0x00]) == nil)
    }

    @Test func theAdminListenerIsRead() throws {
        let admin = try #require(try load("  admin: {port: 9090}").configuration.server.admin)
        #expect(admin == AdminListener(host: "0.0.0.0", port: 9090))
        #expect(try load("  admin: {host: 127.0.0.1, port: 0}").configuration.server.admin == AdminListener(host: "127.0.0.1", port: 0))
        #expect(problems("  admin: {host: 127.0.0.1}").first?.contains("server.admin.port: required key missing") == true)
        #expect(problems("  admin: {port: 9090, tls: true}").first?.contains("server.admin.tls: unknown key") == true)
    }
}
