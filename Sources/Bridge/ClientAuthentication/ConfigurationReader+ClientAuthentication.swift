import Callout
import Foundation
import JWT
import PasswordHash
import Secrets
import Yams

extension ConfigurationReader {
    static let clientAuthenticationKeys = ["realm", "hide_credentials", "consumer_record_header", "allowed_consumers", "api_key", "basic", "jwt"]
    static let apiKeyKeys = ["key_names", "key_in_header", "key_in_query", "keys"]
    static let basicKeys = ["users", "cache_ttl", "cache_size", "max_pending_verifications"]
    static let jwtKeys = ["keys", "algorithms", "issuers", "audiences", "required_claims", "leeway", "consumer_claim"]
    /// The keys of a `{jwks_url: URL}` entry of `jwt.keys`.
    static let jwksURLKeys = ["jwks_url", "jwks_refresh_interval", "jwks_timeout", "jwks_ssl_verify", "jwks_ca_file"]
    /// The key types a JWKS URL may serve (public keys only: a symmetric key there is refused when fetched).
    static let jwksURLKeyTypes: Set<JWTKeyType> = [.rsa, .ecP256, .ecP384, .ecP521, .ed25519]
    static let rateLimitKeys = ["route", "consumer", "max_consumers"]
    /// The longest consumer name (configured, or read from a token's claim).
    static let maximumConsumerLength = 256

    /// `client_authentication:`.
    func readClientAuthentication(_ node: Node, _ path: String) -> ClientAuthenticationSettings? {
        guard let entries = mapping(node, path, allowed: Self.clientAuthenticationKeys) else { return nil }
        var settings = ClientAuthenticationSettings()
        for (key, value) in entries {
            let keyPath = "\(path).\(key)"
            switch key {
            case "realm":
                guard let realm = nonEmptyString(value, keyPath) else { break }
                guard realm.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) else {
                    issue(value, keyPath, "a realm is printable ASCII without '\"' or '\\' (it is quoted in WWW-Authenticate)")
                    break
                }
                settings.realm = realm
            case "hide_credentials": if let flag = bool(value, keyPath) { settings.hideCredentials = flag }
            case "consumer_record_header":
                guard let name = string(value, keyPath) else { break }
                guard name.isEmpty || name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                    issue(value, keyPath, "a record header name here is printable ASCII without spaces")
                    break
                }
                settings.consumerRecordHeader = name.isEmpty ? nil : name
            case "allowed_consumers": if let names = stringList(value, keyPath) { settings.allowedConsumers = names }
            case "api_key": settings.apiKey = readAPIKeys(value, keyPath)
            case "basic": settings.basic = readBasicAuthentication(value, keyPath)
            case "jwt": settings.jwt = readJWTAuthentication(value, keyPath)
            default: break
            }
        }
        if settings.apiKey == nil, settings.basic == nil, settings.jwt == nil, !entries.contains(where: { ["api_key", "basic", "jwt"].contains($0.key) }) {
            issue(node, path, "enables no method: give at least one of api_key, basic, jwt")
        }
        let consumers = (settings.apiKey?.keys.map(\.consumer) ?? []) + (settings.basic?.users.map(\.consumer) ?? [])
        if settings.jwt == nil, !settings.allowedConsumers.isEmpty {
            for (index, name) in settings.allowedConsumers.enumerated() where !consumers.contains(name) {
                warning(node, "\(path).allowed_consumers[\(index)]",
                        "no API key or user has consumer '\(name)'")
            }
        }
        return settings
    }

    private func readAPIKeys(_ node: Node, _ path: String) -> APIKeySettings? {
        guard let entries = mapping(node, path, allowed: Self.apiKeyKeys) else { return nil }
        var settings = APIKeySettings()
        var sawKeys = false
        for (key, value) in entries {
            let keyPath = "\(path).\(key)"
            switch key {
            case "key_names":
                guard let names = stringList(value, keyPath) else { break }
                if names.isEmpty { issue(value, keyPath, "lists no name") }
                for (index, name) in names.enumerated() where !Self.isHTTPToken(name) {
                    issue(value.sequence?[index], "\(keyPath)[\(index)]", "'\(name)' is not a valid header name")
                }
                settings.keyNames = names
            case "key_in_header": if let flag = bool(value, keyPath) { settings.keyInHeader = flag }
            case "key_in_query": if let flag = bool(value, keyPath) { settings.keyInQuery = flag }
            case "keys":
                sawKeys = true
                guard let list = value.sequence else {
                    issue(value, keyPath, "expected a list of {consumer, key}")
                    break
                }
                var seen: [String: Int] = [:]
                for (index, element) in list.enumerated() {
                    let elementPath = "\(keyPath)[\(index)]"
                    guard let fields = mapping(element, elementPath, allowed: ["consumer", "key"]) else { continue }
                    let values = Dictionary(fields.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
                    guard let consumerNode = values["consumer"], let keyNode = values["key"] else {
                        issue(element, elementPath, "an API key needs 'consumer' and 'key'")
                        continue
                    }
                    guard let consumer = readConsumerName(consumerNode, "\(elementPath).consumer"),
                          let secret = readSecret(keyNode, "\(elementPath).key") else { continue }
                    if secret.value.utf8.count < 16 {
                        issue(keyNode, "\(elementPath).key", "an API key has at least 16 characters (this one has \(secret.value.utf8.count))")
                        continue
                    }
                    if let first = seen[secret.value] {
                        issue(keyNode, "\(elementPath).key", "the same key as \(keyPath)[\(first)]")
                        continue
                    }
                    seen[secret.value] = index
                    settings.keys.append(APIKeySettings.Key(consumer: consumer, key: secret))
                }
                if list.isEmpty { issue(value, keyPath, "lists no key") }
            default: break
            }
        }
        if !sawKeys { issue(node, "\(path).keys", "required key missing") }
        if !settings.keyInHeader, !settings.keyInQuery {
            issue(node, path, "key_in_header and key_in_query are both false: no key could ever be read")
        }
        return settings
    }

    private func readBasicAuthentication(_ node: Node, _ path: String) -> BasicAuthenticationSettings? {
        guard let entries = mapping(node, path, allowed: Self.basicKeys) else { return nil }
        var settings = BasicAuthenticationSettings()
        var sawUsers = false
        for (key, value) in entries {
            let keyPath = "\(path).\(key)"
            switch key {
            case "cache_ttl": if let ms = int(value, keyPath, in: 0...86_400_000) { settings.cacheTTL = .milliseconds(ms) }
            case "cache_size": if let count = int(value, keyPath, in: 1...1_000_000) { settings.cacheSize = count }
            case "max_pending_verifications": if let count = int(value, keyPath, in: 1...100_000) { settings.maxPendingVerifications = count }
            case "users":
                sawUsers = true
                guard let list = value.sequence else {
                    issue(value, keyPath, "expected a list of {username, password_hash}")
                    break
                }
                var seen = Set<String>()
                for (index, element) in list.enumerated() {
                    let elementPath = "\(keyPath)[\(index)]"
                    guard let fields = mapping(element, elementPath, allowed: ["username", "password_hash", "consumer", "password"]) else { continue }
                    let values = Dictionary(fields.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
                    if let plain = values["password"] {
                        issue(plain, "\(elementPath).password",
                              "plain passwords are refused: give 'password_hash', an argon2id ($argon2id$), bcrypt ($2b$) or yescrypt ($y$) hash (e.g. from argon2, htpasswd -nbB or mkpasswd -m yescrypt)")
                        continue
                    }
                    guard let usernameNode = values["username"], let hashNode = values["password_hash"] else {
                        issue(element, elementPath, "a user needs 'username' and 'password_hash'")
                        continue
                    }
                    guard let username = nonEmptyString(usernameNode, "\(elementPath).username") else { continue }
                    guard !username.contains(":"), username.utf8.count <= Self.maximumConsumerLength else {
                        issue(usernameNode, "\(elementPath).username", "a username has no ':' and at most \(Self.maximumConsumerLength) bytes")
                        continue
                    }
                    guard seen.insert(username).inserted else {
                        issue(usernameNode, "\(elementPath).username", "user '\(username)' is listed twice")
                        continue
                    }
                    guard let hashText = readSecret(hashNode, "\(elementPath).password_hash") else { continue }
                    let hash: PasswordHash
                    do {
                        hash = try PasswordHash(parsing: hashText.value)
                    } catch {
                        issue(hashNode, "\(elementPath).password_hash", error.reason)
                        continue
                    }
                    var consumer: String?
                    if let consumerNode = values["consumer"] {
                        guard let name = readConsumerName(consumerNode, "\(elementPath).consumer") else { continue }
                        consumer = name
                    }
                    settings.users.append(BasicAuthenticationSettings.User(username: username, consumer: consumer, passwordHash: hash))
                }
                if list.isEmpty { issue(value, keyPath, "lists no user") }
            default: break
            }
        }
        if !sawUsers { issue(node, "\(path).users", "required key missing") }
        return settings
    }

    private func readJWTAuthentication(_ node: Node, _ path: String) -> JWTAuthenticationSettings? {
        guard let entries = mapping(node, path, allowed: Self.jwtKeys) else { return nil }
        var settings = JWTAuthenticationSettings()
        var algorithmsNode: Node?
        for (key, value) in entries {
            let keyPath = "\(path).\(key)"
            switch key {
            case "keys":
                guard let list = value.sequence, !list.isEmpty else {
                    issue(value, keyPath, "expected a non-empty list of {file: PATH} (PEM, JWK or JWKS), {jwks_url: URL} or {secret: ...} (HMAC)")
                    break
                }
                for (index, element) in list.enumerated() {
                    let elementPath = "\(keyPath)[\(index)]"
                    if element.mapping?.contains(where: { $0.key.scalar?.string == "jwks_url" }) == true {
                        if let keySet = readJWKSURL(element, elementPath) { settings.keySetURLs.append(keySet) }
                    } else if let key = readJWTKey(element, elementPath) {
                        settings.keys.append(key)
                    }
                }
            case "algorithms":
                algorithmsNode = value
                guard let names = stringList(value, keyPath) else { break }
                for (index, name) in names.enumerated() {
                    guard let algorithm = JWTSignatureAlgorithm(name: name) else {
                        let known = JWTSignatureAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")
                        issue(value.sequence?[index], "\(keyPath)[\(index)]",
                              name.lowercased() == "none" ? "'none' is never accepted: tokens must be signed" : "unknown algorithm '\(name)' (\(known))")
                        continue
                    }
                    if !settings.algorithms.contains(algorithm) { settings.algorithms.append(algorithm) }
                }
            case "issuers": if let list = stringList(value, keyPath) { settings.issuers = list }
            case "audiences": if let list = stringList(value, keyPath) { settings.audiences = list }
            case "required_claims": if let list = stringList(value, keyPath) { settings.requiredClaims = list }
            case "leeway": if let seconds = int(value, keyPath, in: 0...3600) { settings.leeway = seconds }
            case "consumer_claim": if let claim = nonEmptyString(value, keyPath) { settings.consumerClaim = claim }
            default: break
            }
        }
        if entries.first(where: { $0.key == "keys" }) == nil { issue(node, "\(path).keys", "required key missing") }
        // A JWKS URL's keys are known only once fetched: any public key type may come from it.
        let keyTypes = Set(settings.keys.flatMap(\.types)).union(settings.keySetURLs.isEmpty ? [] : Self.jwksURLKeyTypes)
        if settings.algorithms.isEmpty {
            settings.algorithms = JWTSignatureAlgorithm.allCases.filter { keyTypes.contains($0.keyType) }
        } else if !keyTypes.isEmpty {
            // The algorithm is bound to the key type: an RS256 token is never checked with an HMAC secret.
            for (index, algorithm) in settings.algorithms.enumerated() where !keyTypes.contains(algorithm.keyType) {
                let fixed = Set(settings.keys.flatMap(\.types)).map(\.rawValue).sorted()
                let have = (fixed + (settings.keySetURLs.isEmpty ? [] : ["the public keys of a JWKS URL"])).joined(separator: ", ")
                issue(algorithmsNode?.sequence?[index], "\(path).algorithms[\(index)]",
                      "\(algorithm.rawValue) needs \(algorithm.keyType.rawValue) key, and the keys are: \(have)")
            }
        }
        return settings
    }

    /// `{file: PATH}` (a PEM public key or certificate, a JWK or a JWKS) or `{secret: SECRET}` (an HMAC secret, itself
    /// inline, `{env: NAME}` or `{file: PATH}`). A file must hold a public key: never used as an HMAC secret.
    private func readJWTKey(_ node: Node, _ path: String) -> JWTAuthenticationSettings.Key? {
        if let stray = node.mapping?.first(where: { $0.key.scalar?.string.hasPrefix("jwks_") == true }), let name = stray.key.scalar?.string {
            issue(stray.key, "\(path).\(name)", "goes with jwks_url (this key has none)")
            return nil
        }
        guard let fields = mapping(node, path, allowed: ["file", "secret"]), fields.count == 1, let field = fields.first else {
            if node.mapping != nil { issue(node, path, "a JWT key is {file: PATH} (PEM, JWK or JWKS), {jwks_url: URL} or {secret: ...} (HMAC)") }
            return nil
        }
        let keyPath = "\(path).\(field.key)"
        let text: Secret
        if field.key == "file" {
            guard let file = readFile(field.node, keyPath) else { return nil }
            let content: String
            do {
                content = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                issue(field.node, keyPath, "cannot read \(file): \(error)")
                return nil
            }
            let start = content.drop { $0.isWhitespace }
            guard start.hasPrefix("-----BEGIN") || start.hasPrefix("{") else {
                issue(field.node, keyPath, "\(file) is not a PEM key or certificate, a JWK or a JWKS (an HMAC secret goes under 'secret')")
                return nil
            }
            text = Secret(content, source: "file \(file)")
        } else {
            guard let secret = readSecret(field.node, keyPath) else { return nil }
            let start = secret.value.drop { $0.isWhitespace }
            guard !start.hasPrefix("-----BEGIN"), !start.hasPrefix("{") else {
                issue(field.node, keyPath, "this looks like a public key or JWK: give it with 'file', never as an HMAC secret")
                return nil
            }
            text = secret
        }
        do {
            let types = try JWTVerificationKeys.keyTypes(of: text.value)
            if field.key == "file", types.contains(.hmac) {
                issue(field.node, keyPath, "holds a symmetric key (JWK kty 'oct'): a file here holds public keys; give an HMAC secret under 'secret'")
                return nil
            }
            return JWTAuthenticationSettings.Key(text: text, types: types)
        } catch {
            issue(field.node, keyPath, error.description)
            return nil
        }
    }

    /// `{jwks_url: URL, jwks_refresh_interval, jwks_timeout, jwks_ssl_verify, jwks_ca_file}`: a JWKS fetched at start-up
    /// and refreshed in the background. `https`, or `http` only to a loopback host (keys over plain HTTP could be swapped
    /// by anyone on the path).
    private func readJWKSURL(_ node: Node, _ path: String) -> JWTAuthenticationSettings.KeySetURL? {
        guard let entries = mapping(node, path, allowed: Self.jwksURLKeys) else { return nil }
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
        guard let urlNode = values["jwks_url"] else { return nil }
        let urlPath = "\(path).jwks_url"
        guard let text = nonEmptyString(urlNode, urlPath) else { return nil }
        let url: CalloutURL
        do {
            url = try CalloutURL(parsing: text)
        } catch {
            issue(urlNode, urlPath, "'\(text.prefix(200))' is not a usable http(s) URL: \(error.message)")
            return nil
        }
        if url.scheme == .http, !url.host.isLoopback {
            issue(urlNode, urlPath, "plain http:// is refused for a key set fetched from another machine (anyone on the path could swap "
                  + "the keys): use https://, or http:// only to localhost, 127.0.0.0/8 or [::1]")
            return nil
        }
        var keySet = JWTAuthenticationSettings.KeySetURL(
            url: url.string, origin: ConfigurationOrigin(file: file, line: urlNode.mark?.line, column: urlNode.mark?.column, key: urlPath))
        var valid = true
        if let intervalNode = values["jwks_refresh_interval"] {
            if let ms = int(intervalNode, "\(path).jwks_refresh_interval", in: 1000...86_400_000) { keySet.refreshInterval = .milliseconds(ms) } else { valid = false }
        }
        if let timeoutNode = values["jwks_timeout"] {
            if let ms = int(timeoutNode, "\(path).jwks_timeout", in: 1...600_000) { keySet.timeout = .milliseconds(ms) } else { valid = false }
        }
        if let verifyNode = values["jwks_ssl_verify"] {
            if let verify = bool(verifyNode, "\(path).jwks_ssl_verify") {
                keySet.sslVerify = verify
                if !verify, url.scheme == .https {
                    warning(verifyNode, "\(path).jwks_ssl_verify", "the key server's certificate is not verified: anyone on the path can swap the keys")
                }
            } else {
                valid = false
            }
        }
        if let caNode = values["jwks_ca_file"] {
            if let caFile = readFile(caNode, "\(path).jwks_ca_file") { keySet.caFile = caFile } else { valid = false }
        }
        if url.scheme == .http, values["jwks_ssl_verify"] != nil || values["jwks_ca_file"] != nil {
            warning(node, path, "jwks_ssl_verify and jwks_ca_file apply to an https:// URL; this one is http://")
        }
        return valid ? keySet : nil
    }

    private func readConsumerName(_ node: Node, _ path: String) -> String? {
        guard let name = nonEmptyString(node, path) else { return nil }
        guard name.utf8.count <= Self.maximumConsumerLength, name.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else {
            issue(node, path, "a consumer name has at most \(Self.maximumConsumerLength) bytes and no control characters")
            return nil
        }
        return name
    }

    // MARK: - Rate limits

    /// `rate_limit:`.
    func readRateLimit(_ node: Node, _ path: String) -> RateLimitSettings? {
        guard let entries = mapping(node, path, allowed: Self.rateLimitKeys) else { return nil }
        var settings = RateLimitSettings()
        for (key, value) in entries {
            let keyPath = "\(path).\(key)"
            switch key {
            case "route": settings.route = readLimit(value, keyPath)
            case "consumer": settings.consumer = readLimit(value, keyPath)
            case "max_consumers": if let count = int(value, keyPath, in: 1...10_000_000) { settings.maxConsumers = count }
            default: break
            }
        }
        if !entries.contains(where: { $0.key == "route" || $0.key == "consumer" }) {
            issue(node, path, "sets no limit: give 'route', 'consumer' or both")
        }
        return settings
    }

    private func readLimit(_ node: Node, _ path: String) -> RateLimitSettings.Limit? {
        guard let entries = mapping(node, path, allowed: ["rate", "per", "burst"]) else { return nil }
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
        guard let rateNode = values["rate"] else {
            issue(node, "\(path).rate", "required key missing")
            return nil
        }
        guard let rate = int(rateNode, "\(path).rate", in: 1...1_000_000_000) else { return nil }
        var period = Duration.seconds(1)
        if let perNode = values["per"], let text = string(perNode, "\(path).per") {
            switch text {
            case "second": period = .seconds(1)
            case "minute": period = .seconds(60)
            case "hour": period = .seconds(3600)
            default: issue(perNode, "\(path).per", "unknown period '\(text)' (second, minute, hour)")
            }
        }
        var burst = rate
        if let burstNode = values["burst"] {
            guard let value = int(burstNode, "\(path).burst", in: 1...1_000_000_000) else { return nil }
            burst = value
        }
        return RateLimitSettings.Limit(rate: rate, period: period, burst: burst)
    }

    /// A per-consumer limit needs consumers.
    func checkRateLimit(_ route: RouteConfiguration, _ entry: (node: Node, path: String)?) {
        guard let entry, route.rateLimit?.consumer != nil, route.clientAuthentication == nil else { return }
        issue(entry.node, "\(entry.path).consumer", "a per-consumer limit needs client_authentication on the route")
    }

    static func isHTTPToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
