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
        guard let entries = mapping(confluentNode, base, allowed: [
            "url", "ssl_verify", "ca_file", "client_certificate_file", "client_key_file", "ttl", "timeout", "authentication",
            "value_schema", "key_schema",
        ]) else { return nil }
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
        }
        if let value = values["value_schema"] { settings.value = readSubject(value, "\(base).value_schema") ?? settings.value }
        if let key = values["key_schema"] { settings.key = readSubject(key, "\(base).key_schema") }
        return settings
    }

    func readSubject(_ node: Node, _ path: String) -> SchemaRegistrySettings.Subject? {
        guard let entries = mapping(node, path, allowed: ["subject_name", "schema_version"]) else { return nil }
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
            default: break
            }
        }
        return subject
    }

    func readRegistryAuthentication(_ node: Node, _ path: String) -> SchemaRegistryConfiguration.Authentication? {
        guard let entries = mapping(node, path, allowed: ["mode", "basic", "oauth2"]) else { return nil }
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
        let mode = values["mode"].flatMap { string($0, "\(path).mode") } ?? "none"
        switch mode {
        case "none":
            return SchemaRegistryConfiguration.Authentication.none
        case "basic":
            guard let basic = values["basic"], let fields = mapping(basic, "\(path).basic", allowed: ["username", "password"]) else {
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
            ]) else {
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
}
