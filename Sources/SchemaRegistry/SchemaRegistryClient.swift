import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import OAuth2
import Secrets

/// A Confluent Schema Registry client: schemas by subject and version or by id, with their references,
/// cached (see ``SchemaRegistryConfiguration/cacheTTL``), fetched once when requested concurrently, and
/// served stale when the registry is unavailable. Runs on async-http-client; never blocks an event loop.
public final class SchemaRegistryClient: Sendable {
    public let configuration: SchemaRegistryConfiguration
    private let httpClient: HTTPClient
    private let cache = SchemaCache()
    private let breaker: RegistryCircuitBreaker
    private let tokens: OAuth2TokenSource?
    private let tlsConfiguration: TLSConfiguration?
    private let logger: Logger
    private let baseURL: String

    static let contentType = "application/vnd.schemaregistry.v1+json"

    /// - Throws: ``SchemaRegistryError`` `.invalidResponse` when the TLS files cannot be loaded.
    public init(configuration: SchemaRegistryConfiguration, httpClient: HTTPClient, logger: Logger) throws(SchemaRegistryError) {
        self.configuration = configuration
        self.httpClient = httpClient
        self.logger = logger
        var base = configuration.url
        while base.hasSuffix("/") { base.removeLast() }
        baseURL = base
        breaker = RegistryCircuitBreaker(initialBackoff: configuration.retryBackoff, maximumBackoff: configuration.maximumRetryBackoff)
        do {
            tlsConfiguration = try Self.makeTLSConfiguration(configuration.tls)
        } catch {
            throw SchemaRegistryError(code: .invalidResponse, message: "cannot load the registry's TLS files: \(error)")
        }
        if case .oauth2(let credentials) = configuration.authentication {
            tokens = OAuth2TokenSource(credentials: credentials, httpClient: httpClient, tls: tlsConfiguration,
                                       timeout: configuration.requestTimeout)
        } else {
            tokens = nil
        }
    }

    /// How many times a cached schema was served because the registry was unavailable.
    public var staleServed: Int { cache.staleServed.count }

    /// The schema registered under `subject` at `version` (`latest` is re-checked after the cache TTL).
    public func schema(subject: String, version: SchemaVersion) async throws(SchemaRegistryError) -> RegisteredSchema {
        let ttl: Duration? = version == .latest ? configuration.cacheTTL : nil
        return try await cache.schema(for: .subject(subject, version), ttl: ttl) { () throws(SchemaRegistryError) in
            let path = "/subjects/\(Self.escape(subject))/versions/\(version)"
            let answer: SubjectVersionAnswer = try await self.get(path, what: "subject '\(subject)' version \(version)")
            return RegisteredSchema(id: answer.id, subject: answer.subject ?? subject, version: answer.version,
                                    type: try Self.schemaType(answer.schemaType), schema: answer.schema,
                                    references: answer.references ?? [])
        }
    }

    /// The schema registered under `subject` at `version` if it is cached and fresh, without waiting; `nil` when
    /// ``schema(subject:version:)`` would have to ask the registry.
    public func cachedSchema(subject: String, version: SchemaVersion) -> RegisteredSchema? {
        cache.cached(.subject(subject, version), ttl: version == .latest ? configuration.cacheTTL : nil)
    }

    /// The schema with the global id `id`.
    public func schema(id: Int32) async throws(SchemaRegistryError) -> RegisteredSchema {
        try await cache.schema(for: .id(id), ttl: nil) { () throws(SchemaRegistryError) in
            let answer: IDAnswer = try await self.get("/schemas/ids/\(id)", what: "schema id \(id)")
            return RegisteredSchema(id: id, subject: nil, version: nil, type: try Self.schemaType(answer.schemaType),
                                    schema: answer.schema, references: answer.references ?? [])
        }
    }

    /// Every schema `schema` references, directly or not, by reference name. Fails on a reference cycle.
    public func references(of schema: RegisteredSchema) async throws(SchemaRegistryError) -> [String: RegisteredSchema] {
        var resolved: [String: RegisteredSchema] = [:]
        var pending = schema.references.map { ($0, [schema.subject ?? "id \(schema.id)"]) }
        while let (reference, chain) = pending.popLast() {
            guard resolved[reference.name] == nil else { continue }
            guard !chain.contains(reference.subject) else {
                throw SchemaRegistryError(code: .invalidResponse,
                                          message: "reference cycle: \((chain + [reference.subject]).joined(separator: " -> "))")
            }
            let referenced = try await self.schema(subject: reference.subject, version: .number(reference.version))
            resolved[reference.name] = referenced
            pending += referenced.references.map { ($0, chain + [reference.subject]) }
        }
        return resolved
    }

    // MARK: - HTTP

    private struct SubjectVersionAnswer: Decodable {
        var subject: String?
        var version: Int?
        var id: Int32
        var schema: String
        var schemaType: String?
        var references: [RegisteredSchema.Reference]?
    }

    private struct IDAnswer: Decodable {
        var schema: String
        var schemaType: String?
        var references: [RegisteredSchema.Reference]?
    }

    private struct ErrorAnswer: Decodable {
        var error_code: Int?
        var message: String?
    }

    private static func schemaType(_ text: String?) throws(SchemaRegistryError) -> RegisteredSchema.SchemaType {
        guard let text else { return .avro }  // absent means Avro
        guard let type = RegisteredSchema.SchemaType(rawValue: text.uppercased()) else {
            throw SchemaRegistryError(code: .invalidResponse, message: "unknown schemaType '\(text)'")
        }
        return type
    }

    /// The largest registry answer read (a schema with its metadata); a larger one is refused, not buffered.
    static let maximumAnswerSize = 16 << 20

    private static func seconds(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return String(format: "%.1f", Double(milliseconds) / 1000)
    }

    static func escape(_ segment: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#")
        return segment.addingPercentEncoding(withAllowedCharacters: allowed) ?? segment
    }

    private func get<Answer: Decodable>(_ path: String, what: String) async throws(SchemaRegistryError) -> Answer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .GET
        request.headers.add(name: "accept", value: "\(Self.contentType), application/json")
        request.tlsConfiguration = tlsConfiguration
        switch configuration.authentication {
        case .none:
            break
        case .basic(let username, let password):
            request.headers.add(name: "authorization", value: "Basic " + Data("\(username.current()):\(password.current())".utf8).base64EncodedString())
        case .oauth2:
            do {
                request.headers.add(name: "authorization", value: "Bearer \(try await tokens!.token())")
            } catch {
                throw SchemaRegistryError(code: .tokenRequestFailed, message: "\(error)")
            }
        }
        if let identityPoolID = configuration.identityPoolID { request.headers.add(name: "Confluent-Identity-Pool-Id", value: identityPoolID) }
        if let logicalClusterID = configuration.logicalClusterID { request.headers.add(name: "target-sr-cluster", value: logicalClusterID) }
        if case .refused(let lastFailure, let retryIn) = breaker.admit() {
            throw SchemaRegistryError(code: .unavailable, message: "the schema registry at \(configuration.url) is unavailable for \(what) "
                + "(not retried for another \(Self.seconds(retryIn)) s after: \(lastFailure))")
        }
        let status: HTTPResponseStatus
        let body: ByteBuffer
        do {
            let response = try await httpClient.execute(request, timeout: .init(configuration.requestTimeout))
            status = response.status
            body = try await response.body.collect(upTo: Self.maximumAnswerSize)
        } catch is NIOTooManyBytesError {
            breaker.recordSuccess()  // it answered: too much, but it is up
            throw SchemaRegistryError(code: .invalidResponse, message: "\(what): the registry's answer is larger than \(Self.maximumAnswerSize >> 20) MiB")
        } catch {
            breaker.recordFailure("\(error)")
            throw SchemaRegistryError(code: .unavailable, message: "the schema registry at \(configuration.url) is unreachable for \(what): \(error)")
        }
        if status.code >= 500 { breaker.recordFailure("HTTP \(status.code)") } else { breaker.recordSuccess() }
        let data = Data(body.readableBytesView)
        guard status == .ok else {
            let answer = try? JSONDecoder().decode(ErrorAnswer.self, from: data)
            let detail = answer?.message ?? "HTTP \(status.code)"
            let code: SchemaRegistryError.Code = switch status.code {
            case 404: .notFound
            case 401, 403: .unauthorized
            case 500...: .unavailable
            default: .invalidResponse
            }
            throw SchemaRegistryError(code: code, message: "\(what): \(detail)", registryErrorCode: answer?.error_code)
        }
        do {
            return try JSONDecoder().decode(Answer.self, from: data)
        } catch {
            throw SchemaRegistryError(code: .invalidResponse, message: "\(what): the registry's answer is not a schema: \(error)")
        }
    }

    static func makeTLSConfiguration(_ tls: SchemaRegistryConfiguration.TLS) throws -> TLSConfiguration? {
        guard tls != SchemaRegistryConfiguration.TLS() else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = tls.verify ? .fullVerification : .none
        if let caFile = tls.caFile { configuration.trustRoots = .file(caFile) }
        if let certificateFile = tls.certificateFile, let keyFile = tls.keyFile {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        }
        return configuration
    }
}
