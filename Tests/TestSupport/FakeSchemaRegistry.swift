import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A small Confluent Schema Registry over real HTTP for the tests: `GET /subjects/{subject}/versions/{version}`,
/// `GET /schemas/ids/{id}`, Confluent's error bodies, basic or bearer auth, an OAuth2 token endpoint
/// (`POST /oauth/token`), an optional base path, a switch that makes it fail with 503, and request counters.
public final class FakeSchemaRegistry: Sendable {
    struct Version {
        var version: Int
        var id: Int32
        var schema: String
        var schemaType: String?
        var references: [[String: Any]]
    }

    struct State: @unchecked Sendable {  // @unchecked: the `[String: Any]` references are only read under the lock
        var subjects: [String: [Version]] = [:]
        var nextID: Int32 = 1
        var available = true
        var requests: [String: Int] = [:]
        /// The headers of the last registry request (not the token endpoint's).
        var lastRequestHeaders: [(name: String, value: String)] = []
        var tokensIssued = 0
    }

    final class StateBox: Sendable {
        private let state = Mutex(State())
        func withState<T>(_ body: (inout State) -> T) -> T { state.withLock { body(&$0) } }
    }

    private let box = StateBox()
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup
    /// The base URL clients use (with the base path, if any).
    public let url: String
    /// The OAuth2 token endpoint.
    public let tokenEndpoint: String

    /// - Parameters:
    ///   - basePath: a prefix such as `/apis/ccompat/v7` (Apicurio's Confluent API), or "".
    ///   - basicAuth: `user:password` required on every registry request, if set.
    ///   - bearerTokenLifetime: when set, registry requests need a bearer token from the token endpoint,
    ///     valid for this many seconds.
    ///   - delay: how long each registry answer waits (to let concurrent requests pile up).
    public init(basePath: String = "", basicAuth: String? = nil, bearerTokenLifetime: Int? = nil, delay: Duration = .zero) async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let handlerState = box
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(
                        state: handlerState, basePath: basePath, basicAuth: basicAuth, bearerTokenLifetime: bearerTokenLifetime, delay: delay))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        url = "http://127.0.0.1:\(port)\(basePath)"
        tokenEndpoint = "http://127.0.0.1:\(port)/oauth/token"
    }

    public func shutdown() async throws {
        try await channel.close()
        try await group.shutdownGracefully()
    }

    /// The headers of the last registry request (the token endpoint's requests are not recorded here).
    public var lastRequestHeaders: [(name: String, value: String)] { box.withState { $0.lastRequestHeaders } }

    /// Registers a new version of `subject`; returns its id and version.
    @discardableResult
    public func register(subject: String, schema: String, schemaType: String? = nil,
                         references: [(name: String, subject: String, version: Int)] = []) -> (id: Int32, version: Int) {
        box.withState { state in
            let id = state.nextID
            state.nextID += 1
            let version = (state.subjects[subject]?.count ?? 0) + 1
            state.subjects[subject, default: []].append(Version(
                version: version, id: id, schema: schema, schemaType: schemaType,
                references: references.map { ["name": $0.name, "subject": $0.subject, "version": $0.version] }))
            return (id, version)
        }
    }

    /// While false, every request gets 503.
    public func setAvailable(_ available: Bool) { box.withState { $0.available = available } }

    /// How many requests reached a path (without the base path), e.g. `/subjects/orders-value/versions/latest`.
    public func requests(to path: String) -> Int { box.withState { $0.requests[path] ?? 0 } }

    public var tokensIssued: Int { box.withState { $0.tokensIssued } }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let box: StateBox
        let basePath: String
        let basicAuth: String?
        let bearerTokenLifetime: Int?
        let delay: Duration
        private var head: HTTPRequestHead?

        init(state: StateBox, basePath: String, basicAuth: String?, bearerTokenLifetime: Int?, delay: Duration) {
            self.box = state
            self.basePath = basePath
            self.basicAuth = basicAuth
            self.bearerTokenLifetime = bearerTokenLifetime
            self.delay = delay
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): self.head = head
            case .body: break
            case .end:
                guard let head else { return }
                let (status, body) = answer(head)
                let response = HTTPResponseHead(version: head.version, status: status, headers: [
                    "content-type": "application/vnd.schemaregistry.v1+json", "content-length": String(body.utf8.count),
                ])
                let write = { [self] in
                    context.write(wrapOutboundOut(.head(response)), promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                }
                if delay == .zero || head.uri.hasSuffix("/oauth/token") {
                    write()
                } else {
                    let nanoseconds = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
                    context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) { write() }
                }
            }
        }

        private func json(_ object: Any) -> String {
            String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }

        private func error(_ status: HTTPResponseStatus, _ code: Int, _ message: String) -> (HTTPResponseStatus, String) {
            (status, json(["error_code": code, "message": message]))
        }

        func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String) {
            if head.method == .POST, head.uri == "/oauth/token" {
                let token = "token-\(box.withState { state in state.tokensIssued += 1; return state.tokensIssued })"
                return (.ok, json(["access_token": token, "token_type": "Bearer", "expires_in": bearerTokenLifetime ?? 300]))
            }
            guard head.uri.hasPrefix(basePath) else { return error(.notFound, 404, "HTTP 404 Not Found") }
            let path = String(head.uri.dropFirst(basePath.count))
            let available = box.withState { state in
                state.requests[path, default: 0] += 1
                state.lastRequestHeaders = head.headers.map { ($0.name, $0.value) }
                return state.available
            }
            guard available else { return error(.serviceUnavailable, 50003, "Error while forwarding the request to the primary") }
            if let basicAuth {
                let expected = "Basic " + Data(basicAuth.utf8).base64EncodedString()
                guard head.headers.first(name: "authorization") == expected else { return error(.unauthorized, 401, "Unauthorized") }
            }
            if bearerTokenLifetime != nil {
                let issued = box.withState { $0.tokensIssued }
                guard let header = head.headers.first(name: "authorization"), header.hasPrefix("Bearer token-"),
                      let number = Int(header.dropFirst("Bearer token-".count)), number == issued else {
                    return error(.unauthorized, 401, "Unauthorized")
                }
            }
            let parts = path.split(separator: "/").map { $0.removingPercentEncoding ?? String($0) }
            return box.withState { state -> (HTTPResponseStatus, String) in
                if parts.count == 4, parts[0] == "subjects", parts[2] == "versions" {
                    guard let versions = state.subjects[parts[1]] else { return error(.notFound, 40401, "Subject '\(parts[1])' not found.") }
                    let found = parts[3] == "latest" ? versions.last : Int(parts[3]).flatMap { number in versions.first { $0.version == number } }
                    guard let found else { return error(.notFound, 40402, "Version \(parts[3]) not found.") }
                    var object: [String: Any] = ["subject": parts[1], "version": found.version, "id": found.id, "schema": found.schema]
                    if let type = found.schemaType { object["schemaType"] = type }
                    if !found.references.isEmpty { object["references"] = found.references }
                    return (.ok, json(object))
                }
                if parts.count == 3, parts[0] == "schemas", parts[1] == "ids", let id = Int32(parts[2]) {
                    guard let found = state.subjects.values.joined().first(where: { $0.id == id }) else {
                        return error(.notFound, 40403, "Schema \(id) not found")
                    }
                    var object: [String: Any] = ["schema": found.schema]
                    if let type = found.schemaType { object["schemaType"] = type }
                    if !found.references.isEmpty { object["references"] = found.references }
                    return (.ok, json(object))
                }
                return error(.notFound, 404, "HTTP 404 Not Found")
            }
        }
    }
}
