import Foundation
import JSON
import JWT

/// `jwt_sign`'s settings (Kong 3.14+ names and defaults).
public struct JWTSignSettings: Sendable {
    public var algorithm: JWTSignatureAlgorithm
    /// `expires_in`: `exp` = `iat` + this, in seconds (300).
    public var expiresIn = 300
    /// `not_before`: `nbf` = `iat` + this, in seconds (0).
    public var notBefore = 0
    /// `kid` for the header (else the JWK's `kid`, if any).
    public var keyID: String?
    /// `typ` for the header ("JWT").
    public var type = "JWT"
    /// `static_claims`: always included; `inputs.claims` override them, and `iat`, `exp`, `nbf` are the node's.
    public var staticClaims = JSONObject()
}

/// `jwt_verify`'s settings: what is checked besides the signature.
public struct JWTVerifySettings: Sendable {
    public var options = JWTVerificationOptions()
}

extension DefinitionReader {
    static let jwtSignKeys = ["algorithm", "expires_in", "not_before", "kid", "typ", "static_claims"]
    static let jwtVerifyKeys = ["allowed_algorithms", "issuers", "audiences", "required_claims", "leeway", "validate_exp", "validate_nbf"]
    /// The most seconds `expires_in`, `not_before` and `leeway` may hold (ten years): `iat` plus them never overflows.
    static let jwtMaximumSeconds = 315_360_000

    /// The settings of a `jwt_decode`, `jwt_sign` or `jwt_verify` node, checked with their key paths.
    mutating func readJWTSettings(_ type: WorkflowNodeType, _ object: JSONObject, _ path: String) -> NodeSettings? {
        switch type {
        case .jwtSign:
            let names = JWTSignatureAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")
            guard let value = object["algorithm"] else {
                issue("\(path).algorithm", "required key missing: one of \(names)")
                return nil
            }
            guard let name = string(value, "\(path).algorithm") else { return nil }
            guard let algorithm = JWTSignatureAlgorithm(name: name) else {
                issue("\(path).algorithm", "unknown algorithm '\(name)' (one of \(names))"
                      + Suggestion.didYouMean(name, among: JWTSignatureAlgorithm.allCases.map(\.rawValue)))
                return nil
            }
            var settings = JWTSignSettings(algorithm: algorithm)
            if let value = object["expires_in"], let seconds = int(value, "\(path).expires_in", in: 0...Self.jwtMaximumSeconds) {
                settings.expiresIn = seconds
            }
            if let value = object["not_before"], let seconds = int(value, "\(path).not_before", in: -Self.jwtMaximumSeconds...Self.jwtMaximumSeconds) {
                settings.notBefore = seconds
            }
            if let value = object["kid"] { settings.keyID = string(value, "\(path).kid") }
            if let value = object["typ"], let text = string(value, "\(path).typ") { settings.type = text }
            if let value = object["static_claims"] {
                guard let claims = value.objectValue else {
                    issue("\(path).static_claims", "expected an object of claims")
                    return nil
                }
                settings.staticClaims = claims
            }
            return .jwtSign(settings)
        case .jwtVerify:
            var options = JWTVerificationOptions()
            if let value = object["allowed_algorithms"], let names = stringList(value, "\(path).allowed_algorithms") {
                for (position, name) in names.enumerated() {
                    guard let algorithm = JWTSignatureAlgorithm(name: name) else {
                        issue("\(path).allowed_algorithms[\(position)]", "unknown algorithm '\(name)' (one of "
                              + JWTSignatureAlgorithm.allCases.map(\.rawValue).joined(separator: ", ") + "; 'none' is never allowed)")
                        continue
                    }
                    options.allowedAlgorithms.append(algorithm)
                }
            }
            if let value = object["issuers"] { options.issuers = stringList(value, "\(path).issuers") ?? [] }
            if let value = object["audiences"] { options.audiences = stringList(value, "\(path).audiences") ?? [] }
            if let value = object["required_claims"] { options.requiredClaims = stringList(value, "\(path).required_claims") ?? [] }
            if let value = object["leeway"], let seconds = int(value, "\(path).leeway", in: 0...Self.jwtMaximumSeconds) { options.leeway = seconds }
            if let value = object["validate_exp"] { options.validateExpiry = bool(value, "\(path).validate_exp") ?? true }
            if let value = object["validate_nbf"] { options.validateNotBefore = bool(value, "\(path).validate_nbf") ?? true }
            return .jwtVerify(JWTVerifySettings(options: options))
        default:
            return .jwtDecode
        }
    }
}

extension PortSchema {
    /// The ports of the JWT nodes (Kong 3.14+): decode takes the token node-wise; sign and verify take named inputs.
    static func jwt(_ settings: NodeSettings) -> PortSchema {
        switch settings {
        case .jwtSign:
            PortSchema(inputs: ["claims": .map, "key": .any], outputs: ["token": .string, "header": .map, "claims": .map],
                       wholeOutput: .object, outputOrder: ["token", "header", "claims"])
        case .jwtVerify:
            PortSchema(inputs: ["token": .string, "key": .any], outputs: ["claims": .map, "header": .map],
                       wholeOutput: .object, outputOrder: ["claims", "header"])
        default:
            PortSchema(outputs: ["header": .map, "payload": .any, "signature": .string], wholeInput: .string, wholeOutput: .object,
                       outputOrder: ["header", "payload", "signature"])
        }
    }
}

/// The work of the JWT nodes. Keys are parsed once per distinct key text and kept in a small cache per node, since
/// parsing (an RSA key above all) costs far more than signing or verifying. A failure fails the node with the
/// reason; key material never appears in it (the trace masks the `key` input too).
enum JWTNodes {
    /// How many distinct key texts each node keeps parsed.
    static let keyCacheCapacity = 8

    static func decode() -> AsynchronousNodeWork {
        { inputs, _ async throws(WorkflowNodeError) -> NodeOutputs in
            guard case .string(let text)? = inputs.whole else {
                throw WorkflowNodeError("jwt_decode expects the token as a string, got \(inputs.whole?.datakitTypeName ?? "nil")")
            }
            do throws(JWTError) {
                let decoded = try JWTToken.decode(text)
                return .fields(["header": decoded.header, "payload": decoded.payload, "signature": .string(decoded.signature)],
                               order: ["header", "payload", "signature"])
            } catch {
                throw WorkflowNodeError(error.description)
            }
        }
    }

    static func sign(_ settings: JWTSignSettings, cache: JWTKeyCache<JWTSigningKey> = .init(capacity: keyCacheCapacity))
        -> AsynchronousNodeWork
    {
        { inputs, _ async throws(WorkflowNodeError) -> NodeOutputs in
            let keyText = try self.keyText(inputs)
            var claims = settings.staticClaims
            if let dynamic = inputs.ports["claims"] {
                guard case .object(let object) = dynamic else {
                    throw WorkflowNodeError("jwt_sign claims must be an object, got \(dynamic.datakitTypeName)")
                }
                for (name, value) in object { claims[name] = value }
            }
            let issuedAt = Int(Date().timeIntervalSince1970)
            claims["iat"] = .integer(issuedAt)
            claims["nbf"] = .integer(issuedAt + settings.notBefore)
            claims["exp"] = .integer(issuedAt + settings.expiresIn)
            do throws(JWTError) {
                let key = try await cache.value(for: keyText) { () async throws(JWTError) in
                    try await JWTSigningKey(parsing: keyText, algorithm: settings.algorithm)
                }
                let signed = try key.sign(claims: .object(claims), keyID: settings.keyID, type: settings.type)
                return .fields(["token": .string(signed.token), "header": signed.header, "claims": .object(claims)],
                               order: ["token", "header", "claims"])
            } catch {
                throw WorkflowNodeError(error.description)
            }
        }
    }

    static func verify(_ settings: JWTVerifySettings, cache: JWTKeyCache<JWTVerificationKeys> = .init(capacity: keyCacheCapacity))
        -> AsynchronousNodeWork
    {
        { inputs, _ async throws(WorkflowNodeError) -> NodeOutputs in
            let keyText = try self.keyText(inputs)
            guard case .string(let token)? = inputs.ports["token"] else {
                throw WorkflowNodeError("jwt_verify has no token (inputs.token)")
            }
            do throws(JWTError) {
                let keys = try await cache.value(for: keyText) { () async throws(JWTError) in try await JWTVerificationKeys(parsing: keyText) }
                let verified = try keys.verify(token, options: settings.options)
                return .fields(["claims": verified.claims, "header": verified.header], order: ["claims", "header"])
            } catch {
                throw WorkflowNodeError(error.description)
            }
        }
    }

    /// The `key` input as text: a string as it is, an object (a JWK or JWKS from a call or a static node) as JSON.
    private static func keyText(_ inputs: NodeInputs) throws(WorkflowNodeError) -> String {
        switch inputs.ports["key"] {
        case .string(let text)?: return text
        case .object(let object)?: return JSONValue.object(object).jsonText
        case nil, .null?: throw WorkflowNodeError("no key (inputs.key)")
        case let other?: throw WorkflowNodeError("the key must be a string or a JWK/JWKS object, got \(other.datakitTypeName)")
        }
    }
}

extension WorkflowDefinition {
    /// A key wired straight from a `static` node's value is the same for every request: it is checked at start-up, at
    /// the key path of its `inputs.key`, so that `kbridge check` reports an unusable key (the error never shows it).
    func staticJWTKeyIssues() -> [WorkflowConfigurationError.Issue] {
        var staticValues: [String: JSONObject] = [:]
        for node in nodes { if case .static(let values) = node.settings { staticValues[node.name] = values } }
        var issues: [WorkflowConfigurationError.Issue] = []
        for node in nodes {
            guard let label = node.inputs.first(where: { $0.port == "key" })?.label, let dot = label.firstIndex(of: "."),
                  let values = staticValues[String(label[..<dot])], let value = values[String(label[label.index(after: dot)...])]
            else { continue }
            let text: String
            switch value {
            case .string(let string): text = string
            case .object: text = value.jsonText
            default: continue
            }
            do throws(JWTError) {
                switch node.settings {
                case .jwtSign(let settings): try JWTSigningKey.validate(text, algorithm: settings.algorithm)
                case .jwtVerify: try JWTVerificationKeys.validate(text)
                default: continue
                }
            } catch {
                issues.append(.init(path: "nodes[\(node.index - 1)].inputs.key", reason: "the key from \(label) is not usable: \(error.description)"))
            }
        }
        return issues
    }
}
