import Foundation
import Yams

/// `server.tls`: HTTPS on the listener and, optionally, client certificates (mTLS). The files are read and checked
/// at start-up (and again on SIGHUP, for new connections).
public struct ServerTLSSettings: Sendable, Hashable {
    /// `minimum_version`: the oldest TLS version accepted.
    public enum MinimumVersion: String, Sendable, Hashable, CaseIterable {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    /// `client_certificate`: whether clients are asked for a certificate.
    public enum ClientCertificateMode: String, Sendable, Hashable, CaseIterable {
        /// Not asked for.
        case none
        /// Asked for; a client without one is served (without identity), one with a certificate `client_ca_file`
        /// does not vouch for is refused at the handshake.
        case optional
        /// Required: a client without a certificate from `client_ca_file` is refused at the handshake.
        case required
    }

    /// `certificate_file`: PEM file of the server certificate, then any intermediates. Required.
    public var certificateFile: String
    /// `key_file`: PEM file of the certificate's private key (not encrypted). Required.
    public var keyFile: String
    /// `minimum_version`: `1.2` or `1.3`. Default: `1.2`.
    public var minimumVersion = MinimumVersion.tls12
    /// `alpn`: the protocols offered by ALPN, in the server's order of preference: `h2` (HTTP/2), `http/1.1`, `http/1.0`.
    /// Default: `[http/1.1]`.
    public var alpn = ["http/1.1"]
    /// `client_ca_file`: PEM file of the CAs whose client certificates are accepted. Required by `optional`
    /// and `required`.
    public var clientCAFile: String?
    /// `client_certificate`: `none`, `optional` or `required`. Default: `none`.
    public var clientCertificate = ClientCertificateMode.none
    /// `handshake_timeout` (ms): a connection whose TLS handshake has not completed by then is closed. Default: 10000.
    public var handshakeTimeout: Duration = .seconds(10)

    public init(certificateFile: String, keyFile: String) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

extension ConfigurationReader {
    static let serverTLSKeys = [
        "certificate_file", "key_file", "minimum_version", "alpn", "client_ca_file", "client_certificate", "handshake_timeout",
    ]
    /// The ALPN protocol names kbridge can serve.
    static let servableALPN = ["h2", "http/1.1", "http/1.0"]

    /// `server.tls`: reads the keys, then loads the files as the server will (so a bad PEM, a key that does not
    /// match the certificate or an empty CA file is reported here, with the key that names the file).
    func readServerTLS(_ node: Node, _ path: String) -> ServerTLSSettings? {
        guard let entries = mapping(node, path, allowed: Self.serverTLSKeys) else { return nil }
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
        let issuesBefore = issues.count
        var files: [String: String] = [:]
        for key in ["certificate_file", "key_file"] {
            guard let fileNode = values[key] else {
                issue(node, "\(path).\(key)", "required key missing")
                continue
            }
            files[key] = readFile(fileNode, "\(path).\(key)")
        }
        var settings = ServerTLSSettings(certificateFile: files["certificate_file"] ?? "", keyFile: files["key_file"] ?? "")
        if let versionNode = values["minimum_version"], let text = versionNode.scalar?.string {
            if let version = ServerTLSSettings.MinimumVersion(rawValue: text) {
                settings.minimumVersion = version
            } else {
                issue(versionNode, "\(path).minimum_version", "unknown version '\(text)' (1.2 or 1.3)")
            }
        } else if let versionNode = values["minimum_version"] {
            issue(versionNode, "\(path).minimum_version", "expected 1.2 or 1.3")
        }
        if let alpnNode = values["alpn"], let protocols = stringList(alpnNode, "\(path).alpn") {
            for (index, name) in protocols.enumerated() where !Self.servableALPN.contains(name) {
                issue(alpnNode.sequence?[index], "\(path).alpn[\(index)]",
                      "kbridge serves HTTP/2 and HTTP/1.x: '\(name)' cannot be offered (\(Self.servableALPN.joined(separator: ", ")))")
            }
            settings.alpn = protocols
        }
        if let modeNode = values["client_certificate"], let text = string(modeNode, "\(path).client_certificate") {
            if let mode = ServerTLSSettings.ClientCertificateMode(rawValue: text) {
                settings.clientCertificate = mode
            } else {
                issue(modeNode, "\(path).client_certificate", "unknown mode '\(text)' (none, optional, required)")
            }
        }
        if let caNode = values["client_ca_file"] {
            settings.clientCAFile = readFile(caNode, "\(path).client_ca_file")
            if settings.clientCertificate == .none {
                warning(caNode, "\(path).client_ca_file", "has no effect with client_certificate: none")
            }
        } else if settings.clientCertificate != .none {
            issue(values["client_certificate"] ?? node, "\(path).client_ca_file",
                  "required with client_certificate: \(settings.clientCertificate.rawValue) (the CAs that vouch for client certificates)")
        }
        if let timeoutNode = values["handshake_timeout"], let ms = int(timeoutNode, "\(path).handshake_timeout", in: 1...600_000) {
            settings.handshakeTimeout = .milliseconds(ms)
        }
        guard issues.count == issuesBefore else { return nil }
        do {
            _ = try IngressTLS.makeContext(settings)
        } catch {
            issue(values[error.key] ?? node, "\(path).\(error.key)", error.reason)
            return nil
        }
        return settings
    }
}

/// `server.admin`: where `/health`, `/ready` and `/metrics` are served when not on the main listener.
public struct AdminListener: Sendable, Hashable {
    /// `host`. Default: `0.0.0.0`.
    public var host = "0.0.0.0"
    /// `port`: required; 0 picks a free one.
    public var port: Int
    /// `reload_path`: `POST` here reloads the configuration file (as SIGHUP does) and answers whether it was applied,
    /// and why not; `""` turns it off. Default: `/reload`.
    public var reloadPath: String? = "/reload"

    public init(host: String = "0.0.0.0", port: Int) {
        self.host = host
        self.port = port
    }
}

extension ConfigurationReader {
    /// `server.admin: {host, port, reload_path}`.
    func readAdminListener(_ node: Node, _ path: String) -> AdminListener? {
        guard let entries = mapping(node, path, allowed: ["host", "port", "reload_path"]) else { return nil }
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
        guard let portNode = values["port"] else {
            issue(node, "\(path).port", "required key missing")
            return nil
        }
        guard let port = int(portNode, "\(path).port", in: 0...65535) else { return nil }
        var admin = AdminListener(port: port)
        if let hostNode = values["host"] {
            guard let host = nonEmptyString(hostNode, "\(path).host") else { return nil }
            admin.host = host
        }
        if let reloadNode = values["reload_path"], let text = string(reloadNode, "\(path).reload_path") {
            if text.isEmpty || text.hasPrefix("/") {
                admin.reloadPath = text.isEmpty ? nil : text
            } else {
                issue(reloadNode, "\(path).reload_path", "must start with '/' (or be \"\" to turn the endpoint off)")
            }
        }
        return admin
    }
}
