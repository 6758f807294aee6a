import SchemaRegistry
import Yams

extension ConfigurationReader {
    /// `schema_registry: {confluent: {url, ssl_verify, ttl, authentication, value_schema, key_schema}}` (Kong's names),
    /// plus `ca_file` for a private CA and `timeout` (ms) per registry request.
    func readSchemaRegistry(_ node: Node, _ path: String) -> SchemaRegistrySettings? {
        guard let outer = mapping(node, path, allowed: ["confluent"]) else { return nil }
        guard let confluentNode = outer.first(where: { $0.key == "confluent" })?.node else {
            issue(node, "\(path).confluent", "required key missing")
            return nil
        }
        let base = "\(path).confluent"
        if confluentNode.null != nil { return nil }  // Kong exports an unset registry as `confluent: null`
        // ... or as the record with its defaults and `url: null`: no registry, said once.
        if let url = confluentNode.mapping?.first(where: { $0.key.scalar?.string == "url" })?.value, url.null != nil {
            warning(url, "\(base).url", "null: this route uses no schema registry (the rest of schema_registry is not read)")
            return nil
        }
        guard let entries = mapping(confluentNode, base, allowed: [
            "url", "ssl_verify", "ca_file", "client_certificate_file", "client_key_file", "ttl", "timeout", "authentication",
            "value_schema", "key_schema",
        ], nullIsUnset: true) else { return nil }
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
        guard let urlNode = values["url"] else {
            issue(confluentNode, "\(base).url", "required key missing")
            return nil
        }
        guard let url = nonEmptyString(urlNode, "\(base).url") else { return nil }
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            issue(urlNode, "\(base).url", "'\(url)' is not an http:// or https:// URL")
            return nil
        }
        var settings = SchemaRegistrySettings(registry: SchemaRegistryConfiguration(url: url))
        if let ttl = values["ttl"].flatMap({ int($0, "\(base).ttl", in: 0...3600) }) { settings.registry.cacheTTL = .seconds(ttl) }
        if let timeout = values["timeout"].flatMap({ int($0, "\(base).timeout", in: 1...600_000) }) {
            settings.registry.requestTimeout = .milliseconds(timeout)
        }
        if let verify = values["ssl_verify"].flatMap({ bool($0, "\(base).ssl_verify") }) { settings.registry.tls.verify = verify }
        settings.registry.tls.caFile = values["ca_file"].flatMap { readFile($0, "\(base).ca_file") }
        settings.registry.tls.certificateFile = values["client_certificate_file"].flatMap { readFile($0, "\(base).client_certificate_file") }
        settings.registry.tls.keyFile = values["client_key_file"].flatMap { readFile($0, "\(base).client_key_file") }
        if (settings.registry.tls.certificateFile == nil) != (settings.registry.tls.keyFile == nil) {
            issue(confluentNode, base, "client_certificate_file and client_key_file go together")
        }
        if let authentication = values["authentication"] {
            if SchemaRegistryConfiguration.hasUserInfo(url) {
                issue(authentication, "\(base).authentication", "the url already carries credentials (user:password@); give them in one place")
            }
            settings.registry.authentication = readRegistryAuthentication(authentication, "\(base).authentication") ?? .none
            readConfluentCloudIDs(authentication, "\(base).authentication", into: &settings.registry)
        }
        if let value = values["value_schema"] { settings.value = readSubject(value, "\(base).value_schema") ?? settings.value }
        if let key = values["key_schema"] { settings.key = readSubject(key, "\(base).key_schema") }
        return settings
    }

    func readSubject(_ node: Node, _ path: String) -> SchemaRegistrySettings.Subject? {
        guard let entries = mapping(node, path, allowed: ["subject_name", "schema_version", "payload_encoding"], nullIsUnset: true) else { return nil }
        var subject = SchemaRegistrySettings.Subject()
        for (key, value) in entries {
            switch key {
            case "subject_name": subject.name = nonEmptyString(value, "\(path).subject_name")
            case "schema_version":
                guard let text = string(value, "\(path).schema_version") else { continue }
                guard let version = SchemaVersion(text) else {
                    issue(value, "\(path).schema_version", "'\(text)' is neither 'latest' nor a version number")
                    continue
                }
                subject.version = version
            case "payload_encoding":
                // Avro only; accepted silently for JSON Schema subjects (Kong's exports carry it on every subject).
                guard let text = string(value, "\(path).payload_encoding") else { continue }
                guard let encoding = AvroEncoder.UnionEncoding(rawValue: text) else {
                    let known = AvroEncoder.UnionEncoding.allCases.map(\.rawValue).joined(separator: ", ")
                    issue(value, "\(path).payload_encoding", "unknown encoding '\(text)' (\(known))")
                    continue
                }
                subject.payloadEncoding = encoding
            default: break
            }
        }
        return subject
    }

    func readRegistryAuthentication(_ node: Node, _ path: String) -> SchemaRegistryConfiguration.Authentication? {
        guard let entries = mapping(node, path, allowed: [
            "mode", "basic", "oauth2", "oauth2_client", "identity_pool_id", "logical_cluster_id",
        ], nullIsUnset: true) else { return nil }
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
        if let client = values["oauth2_client"] { readOAuth2Client(client, "\(path).oauth2_client") }
        let mode = values["mode"].flatMap { string($0, "\(path).mode") } ?? "none"
        switch mode {
        case "none":
            return SchemaRegistryConfiguration.Authentication.none
        case "basic":
            guard let basic = values["basic"], let fields = mapping(basic, "\(path).basic", allowed: ["username", "password"], nullIsUnset: true) else {
                issue(node, "\(path).basic", "required with mode 'basic' ({username, password})")
                return nil
            }
            let map = Dictionary(fields.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
            guard let userNode = map["username"], let passwordNode = map["password"] else {
                issue(basic, "\(path).basic", "needs username and password")
                return nil
            }
            guard let user = readSecret(userNode, "\(path).basic.username"), let password = readSecret(passwordNode, "\(path).basic.password") else { return nil }
            return .basic(username: user, password: password)
        case "oauth2":
            guard let oauth = values["oauth2"], let fields = mapping(oauth, "\(path).oauth2", allowed: [
                "token_endpoint", "client_id", "client_secret", "scopes", "audience", "grant_type",
            ], nullIsUnset: true) else {
                issue(node, "\(path).oauth2", "required with mode 'oauth2' ({token_endpoint, client_id, client_secret})")
                return nil
            }
            let map = Dictionary(fields.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
            if let grant = map["grant_type"].flatMap({ string($0, "\(path).oauth2.grant_type") }), grant != "client_credentials" {
                issue(map["grant_type"], "\(path).oauth2.grant_type", "only 'client_credentials' is supported")
            }
            guard let endpointNode = map["token_endpoint"], let endpoint = nonEmptyString(endpointNode, "\(path).oauth2.token_endpoint"),
                  let idNode = map["client_id"], let id = readSecret(idNode, "\(path).oauth2.client_id"),
                  let secretNode = map["client_secret"], let secret = readSecret(secretNode, "\(path).oauth2.client_secret") else {
                issue(oauth, "\(path).oauth2", "needs token_endpoint, client_id and client_secret")
                return nil
            }
            var credentials = SchemaRegistryConfiguration.OAuth2ClientCredentials(tokenEndpoint: endpoint, clientID: id, clientSecret: secret)
            credentials.scopes = map["scopes"].flatMap { stringList($0, "\(path).oauth2.scopes") } ?? []
            credentials.audience = map["audience"].flatMap { stringList($0, "\(path).oauth2.audience") } ?? []
            return .oauth2(credentials)
        default:
            issue(values["mode"], "\(path).mode", "unknown mode '\(mode)' (none, basic, oauth2)")
            return nil
        }
    }

    /// Kong 3.16's Confluent Cloud ids beside the mode: `identity_pool_id` → `Confluent-Identity-Pool-Id`,
    /// `logical_cluster_id` → `target-sr-cluster` (Kong exports `null` for an unset one).
    func readConfluentCloudIDs(_ node: Node, _ path: String, into registry: inout SchemaRegistryConfiguration) {
        guard let entries = node.mapping else { return }  // reported by readRegistryAuthentication
        for (keyNode, value) in entries {
            guard let key = keyNode.scalar?.string, key == "identity_pool_id" || key == "logical_cluster_id", value.null == nil,
                  let id = nonEmptyString(value, "\(path).\(key)") else { continue }
            guard id.utf8.count <= 256, id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                issue(value, "\(path).\(key)", "expected an id of at most 256 visible ASCII characters")
                continue
            }
            if key == "identity_pool_id" { registry.identityPoolID = id } else { registry.logicalClusterID = id }
        }
    }

    /// Kong's `oauth2_client` (how Kong's HTTP client reaches the IdP): kbridge's token client posts the client
    /// credentials in the body over HTTP/1.1 with keep-alive, verifies TLS and times out with the registry's timeout.
    /// Kong's defaults describe exactly that and are accepted silently; any other value is accepted with a warning
    /// that it is ignored.
    func readOAuth2Client(_ node: Node, _ path: String) {
        let defaults: [String: String] = [
            "auth_method": "client_secret_post", "client_secret_jwt_alg": "HS512", "http_version": "1.1", "keep_alive": "true",
            "ssl_verify": "true", "timeout": "10000",
        ]
        let proxies = ["http_proxy", "http_proxy_authorization", "https_proxy", "https_proxy_authorization", "no_proxy"]
        guard let entries = mapping(node, path, allowed: Array(defaults.keys).sorted() + proxies, nullIsUnset: true) else { return }
        for (key, value) in entries {
            let text = value.scalar?.string
            guard text != defaults[key] else { continue }
            warning(value, "\(path).\(key)", "ignored: kbridge's token client uses Kong's default here (\(defaults[key].map { "'\($0)'" } ?? "no proxy"))")
        }
    }
}
