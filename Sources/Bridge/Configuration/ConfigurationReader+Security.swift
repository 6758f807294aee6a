import Foundation
import Yams

extension ConfigurationReader {
    static let authenticationKeys = ["strategy", "mechanism", "user", "password", "tokenauth", "oauthbearer"]
    static let securityKeys = [
        "ssl", "ssl_verify", "ca_file", "client_certificate_file", "client_key_file", "client_key_password", "certificate_id",
    ]

    /// `authentication:` (Kong's `strategy`, `mechanism`, `user`, `password`, `tokenauth`, `oauthbearer`).
    func readAuthentication(_ node: Node, _ path: String) -> KafkaAuthentication? {
        guard let entries = mapping(node, path, allowed: Self.authenticationKeys, nullIsUnset: true) else { return nil }
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
        // A Kong export lists `authentication` with every field unset (null) when there is no SASL.
        if values["mechanism"] == nil, values["user"] == nil, values["password"] == nil, values["strategy"] == nil,
           values["tokenauth"].map({ $0.bool == false }) ?? true, values["oauthbearer"].map(Self.isUnsetRecord) ?? true {
            return nil
        }
        if let strategy = values["strategy"], let text = string(strategy, "\(path).strategy"), text != "sasl" {
            issue(strategy, "\(path).strategy", "unknown strategy '\(text)' (the only strategy is 'sasl')")
        }
        guard let mechanismNode = values["mechanism"] else {
            issue(node, "\(path).mechanism", "required key missing (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)")
            return nil
        }
        guard let text = string(mechanismNode, "\(path).mechanism") else { return nil }
        guard let mechanism = KafkaAuthentication.Mechanism(rawValue: text.uppercased()) else {
            issue(mechanismNode, "\(path).mechanism", "unknown mechanism '\(text)' (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)")
            return nil
        }
        if mechanism == .oauthBearer {
            for key in ["user", "password", "tokenauth"] {
                if let other = values[key], other.null == nil, !(key == "tokenauth" && other.bool == false) {
                    issue(other, "\(path).\(key)", "not used with OAUTHBEARER (the client id and secret go under oauthbearer)")
                }
            }
            guard let oauth = values["oauthbearer"], oauth.null == nil else {
                issue(node, "\(path).oauthbearer", "required with mechanism OAUTHBEARER ({token_endpoint_url, client_id, client_secret})")
                return nil
            }
            return readOAuthBearer(oauth, "\(path).oauthbearer").map(KafkaAuthentication.init(oauthBearer:))
        }
        if let oauth = values["oauthbearer"], !Self.isUnsetRecord(oauth) {
            issue(oauth, "\(path).oauthbearer", "only used with mechanism OAUTHBEARER")
        }
        var user: Secret?
        var password: Secret?
        for key in ["user", "password"] {
            guard let valueNode = values[key] else {
                issue(node, "\(path).\(key)", "required key missing")
                continue
            }
            let secret = readSecret(valueNode, "\(path).\(key)")
            if key == "user" { user = secret } else { password = secret }
        }
        guard let user, let password else { return nil }
        var authentication = KafkaAuthentication(mechanism: mechanism, user: user, password: password)
        if let tokenNode = values["tokenauth"], let tokenauth = bool(tokenNode, "\(path).tokenauth") {
            if tokenauth, mechanism == .plain {
                issue(tokenNode, "\(path).tokenauth", "delegation tokens log in with SCRAM-SHA-256 or SCRAM-SHA-512, not PLAIN")
            }
            authentication.tokenAuthentication = tokenauth
        }
        return authentication
    }

    static let oauthBearerKeys = ["token_endpoint_url", "client_id", "client_secret", "scopes", "extensions", "token_endpoint_tls_verify"]
    /// The most extensions, and the longest extension value, accepted (a handful is usual: logicalCluster, identityPoolId).
    static let maximumOAuthBearerExtensions = 32
    static let maximumOAuthBearerExtensionLength = 1024

    /// `authentication.oauthbearer` (Kong 3.15): `token_endpoint_url` (http or https), `client_id`, `client_secret`
    /// (secret references allowed for all three), `scopes`, `extensions` (RFC 7628 keys and values) and
    /// `token_endpoint_tls_verify`.
    func readOAuthBearer(_ node: Node, _ path: String) -> KafkaOAuthBearerSettings? {
        guard let entries = mapping(node, path, allowed: Self.oauthBearerKeys, nullIsUnset: true) else { return nil }
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
        var required: [String: Secret] = [:]
        for key in ["token_endpoint_url", "client_id", "client_secret"] {
            guard let valueNode = values[key] else {
                issue(node, "\(path).\(key)", "required key missing")
                continue
            }
            required[key] = readSecret(valueNode, "\(path).\(key)")
        }
        if let url = required["token_endpoint_url"] {
            let lowered = url.value.lowercased()
            let scheme = lowered.hasPrefix("https://") ? "https://" : lowered.hasPrefix("http://") ? "http://" : nil
            if scheme == nil || url.value.utf8.count <= scheme!.utf8.count || url.value.contains(where: { $0.isWhitespace }) {
                // The URL may come from a secret reference: said to be wrong without quoting it.
                issue(values["token_endpoint_url"], "\(path).token_endpoint_url", "expected an http:// or https:// URL")
                required["token_endpoint_url"] = nil
            }
        }
        guard let url = required["token_endpoint_url"], let id = required["client_id"], let secret = required["client_secret"] else { return nil }
        var settings = KafkaOAuthBearerSettings(tokenEndpoint: url.value, clientID: id, clientSecret: secret)
        if let scopesNode = values["scopes"], let scopes = stringList(scopesNode, "\(path).scopes") {
            for scope in scopes where scope.isEmpty || !scope.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "\"" && $0 != "\\" }) {
                issue(scopesNode, "\(path).scopes", "'\(scope)' is not a scope (RFC 6749: visible ASCII, no spaces, quotes or backslashes)")
            }
            settings.scopes = scopes
        }
        if let extensionsNode = values["extensions"], extensionsNode.null == nil {
            settings.extensions = readOAuthBearerExtensions(extensionsNode, "\(path).extensions")
        }
        if let verifyNode = values["token_endpoint_tls_verify"], let verify = bool(verifyNode, "\(path).token_endpoint_tls_verify") {
            settings.tokenEndpointTLSVerify = verify
            if !verify {
                warning(verifyNode, "\(path).token_endpoint_tls_verify", "the token endpoint's certificate is not verified: anyone on the path can take the client secret")
            }
        }
        return settings
    }

    /// OAUTHBEARER extensions (RFC 7628 §3.1): keys are letters only and not `auth`; values are visible ASCII,
    /// spaces and tabs.
    func readOAuthBearerExtensions(_ node: Node, _ path: String) -> [String: String] {
        guard let entries = node.mapping else {
            issue(node, path, "expected a mapping of extension names to values (e.g. {logicalCluster: lkc-abc12})")
            return [:]
        }
        guard entries.count <= Self.maximumOAuthBearerExtensions else {
            issue(node, path, "at most \(Self.maximumOAuthBearerExtensions) extensions")
            return [:]
        }
        var extensions: [String: String] = [:]
        for (keyNode, valueNode) in entries {
            guard let key = keyNode.scalar?.string else {
                issue(keyNode, path, "an extension name is text")
                continue
            }
            let keyPath = "\(path).\(key)"
            guard !key.isEmpty, key.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) }) else {
                issue(keyNode, keyPath, "an extension name is letters only (RFC 7628)")
                continue
            }
            guard key != "auth" else {
                issue(keyNode, keyPath, "'auth' is reserved for the token itself (RFC 7628)")
                continue
            }
            guard extensions[key] == nil else {
                issue(keyNode, keyPath, "given twice")
                continue
            }
            guard valueNode.scalar != nil, let value = string(valueNode, keyPath) else {
                if valueNode.scalar == nil { issue(valueNode, keyPath, "expected a text value") }
                continue
            }
            guard value.utf8.count <= Self.maximumOAuthBearerExtensionLength,
                  value.unicodeScalars.allSatisfy({ ($0.value >= 0x20 && $0.value < 0x7F) || $0 == "\t" }) else {
                issue(valueNode, keyPath, "expected at most \(Self.maximumOAuthBearerExtensionLength) visible ASCII characters, spaces or tabs (RFC 7628)")
                continue
            }
            extensions[key] = value
        }
        return extensions
    }

    /// `security:` (Kong's `ssl`, `ssl_verify`; certificate files instead of Kong's `certificate_id`).
    func readSecurity(_ node: Node, _ path: String) -> KafkaTLS? {
        guard let entries = mapping(node, path, allowed: Self.securityKeys, nullIsUnset: true) else { return nil }
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
        if let certificateID = values["certificate_id"] {
            issue(certificateID, "\(path).certificate_id",
                  "Kong's certificate entities do not exist in kbridge; give the PEM files with client_certificate_file and client_key_file")
        }
        let enabled = values["ssl"].flatMap { bool($0, "\(path).ssl") } ?? false
        guard enabled else {
            // `ssl_verify` is in every Kong export (true since 3.14, false in 3.13): accepted, and said to do nothing when false.
            if let verify = values["ssl_verify"], let flag = bool(verify, "\(path).ssl_verify"), !flag {
                warning(verify, "\(path).ssl_verify", "has no effect without 'ssl: true'")
            }
            for key in ["ca_file", "client_certificate_file", "client_key_file", "client_key_password"] {
                if let other = values[key] { issue(other, "\(path).\(key)", "has no effect without 'ssl: true'") }
            }
            return nil
        }
        var tls = KafkaTLS()
        if let verify = values["ssl_verify"].flatMap({ bool($0, "\(path).ssl_verify") }) { tls.verify = verify }
        tls.caFile = values["ca_file"].flatMap { readFile($0, "\(path).ca_file") }
        tls.clientCertificateFile = values["client_certificate_file"].flatMap { readFile($0, "\(path).client_certificate_file") }
        tls.clientKeyFile = values["client_key_file"].flatMap { readFile($0, "\(path).client_key_file") }
        tls.clientKeyPassword = values["client_key_password"].flatMap { readSecret($0, "\(path).client_key_password") }
        if (values["client_certificate_file"] == nil) != (values["client_key_file"] == nil) {
            issue(node, path, "client_certificate_file and client_key_file go together (mTLS needs both)")
        }
        if tls.clientKeyPassword != nil, values["client_key_file"] == nil {
            issue(values["client_key_password"], "\(path).client_key_password", "has no effect without client_key_file")
        }
        if !tls.verify {
            warning(values["ssl_verify"], "\(path).ssl_verify", "broker certificates are not verified: anyone on the path can impersonate the brokers")
        }
        return tls
    }

    /// A secret given inline (`password: s3cret`), from the environment (`{env: NAME}`) or from a file
    /// (`{file: PATH}`, trailing newlines removed). Errors name the variable or file, never a value.
    /// A secret: a plain string, kbridge's `{env: NAME}` or `{file: PATH}`, or Kong's `{vault://env/NAME}` reference,
    /// which a Kong export carries for its referenceable fields (Kong's env vault: NAME with dashes as underscores,
    /// upper-cased; other vault backends are refused).
    func readSecret(_ node: Node, _ path: String) -> Secret? {
        if let text = node.scalar?.string, text.hasPrefix("{vault://"), text.hasSuffix("}") {
            let reference = text.dropFirst("{vault://".count).dropLast()
            guard reference.hasPrefix("env/") else {
                issue(node, path, "only Kong's env vault is supported ({vault://env/NAME}); use {file: PATH} for files")
                return nil
            }
            let name = reference.dropFirst("env/".count).replacingOccurrences(of: "-", with: "_").uppercased()
            guard let value = environment[name], !value.isEmpty else {
                issue(node, path, "environment variable \(name) is not set")
                return nil
            }
            return Secret(value, source: "env \(name)")
        }
        if node.scalar != nil {
            guard let value = nonEmptyString(node, path) else { return nil }
            return Secret(value)
        }
        guard let entries = mapping(node, path, allowed: ["env", "file"]), entries.count == 1, let entry = entries.first else {
            if node.mapping != nil { issue(node, path, "a secret reference is either {env: NAME} or {file: PATH}") }
            return nil
        }
        guard let reference = nonEmptyString(entry.node, "\(path).\(entry.key)") else { return nil }
        if entry.key == "env" {
            guard let value = environment[reference], !value.isEmpty else {
                issue(entry.node, "\(path).env", "environment variable \(reference) is not set")
                return nil
            }
            return Secret(value, source: "env \(reference)")
        }
        guard let resolved = readFile(entry.node, "\(path).file") else { return nil }
        do {
            var value = try String(contentsOfFile: resolved, encoding: .utf8)
            while value.hasSuffix("\n") || value.hasSuffix("\r") { value.removeLast() }
            guard !value.isEmpty else {
                issue(entry.node, "\(path).file", "\(resolved) is empty")
                return nil
            }
            return Secret(value, source: "file \(resolved)", file: resolved)
        } catch {
            issue(entry.node, "\(path).file", "cannot read \(resolved): \(error.localizedDescription)")
            return nil
        }
    }

    /// A path to a readable file, resolved against the configuration file's directory when relative.
    func readFile(_ node: Node, _ path: String) -> String? {
        guard let text = nonEmptyString(node, path) else { return nil }
        let resolved = resolve(text)
        guard FileManager.default.isReadableFile(atPath: resolved) else {
            issue(node, path, FileManager.default.fileExists(atPath: resolved) ? "\(resolved) is not readable" : "\(resolved) does not exist")
            return nil
        }
        return resolved
    }

    func resolve(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        let directory = (file as NSString).deletingLastPathComponent
        return directory.isEmpty ? path : "\(directory)/\(path)"
    }

    /// Whether a Kong record is unset: `null`, or only `null`s, empty collections and booleans at `true`
    /// (the defaults an export fills in, such as `token_endpoint_tls_verify: true`).
    static func isUnsetRecord(_ node: Node) -> Bool {
        if node.null != nil { return true }
        guard let mapping = node.mapping else { return false }
        return mapping.allSatisfy { _, value in
            value.null != nil || value.sequence?.isEmpty == true || value.mapping?.isEmpty == true || (value.scalar != nil && value.bool == true)
        }
    }
}
