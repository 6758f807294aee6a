import Logging
import NIOCore
import NIOHTTP1

/// The ingest end of each connection's pipeline (after NIO's HTTP/1.1 decoder and pipelining handler):
/// routes a request at its head, collects its body up to the route's limit, hands it to the route's
/// ``RouteIngestor`` and writes the answer, now or when the broker's delivery report completes it.
///
/// Written instead of using swift-nio-extras' aggregator because the limit is the route's (known only once the
/// head is routed), unknown routes must be answered without buffering their bodies, and every error is JSON.
///
/// A request refused at its head (over a limit of `server:`, no route, wrong method, bad path or header) is
/// answered at once with `Connection: close`; its body is never read. Malformed HTTP (the decoder's errors)
/// is answered 400 `malformed_request` (431 when the head overflows the decoder's limits) and closed.
/// ``ConnectionGuard``, at the front of the pipeline, is told where each request starts and ends, for its timeouts.
final class HTTPIngestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// Collecting the body of a routed request.
        /// The lease keeps the route's generation (and its producers) in service until the request is answered; a route
        /// with `client_authentication` or `rate_limit` has admitted the request at its head (or is deciding).
        case receiving(head: HTTPRequestHead, match: RouteTable.Match, contentType: String?, body: ByteBuffer?, lease: RouteGeneration.Lease,
                       admission: HeadAdmission?)
        /// The answer of a built-in endpoint, given at the request's end (it has no body).
        case discarding(head: HTTPRequestHead, response: IngestResponse)
        /// `POST` on `server.admin.reload_path`: the configuration file is reloaded at the request's end.
        case reloading(head: HTTPRequestHead)
        /// Waiting for the broker; the pipelining handler holds back any further request meanwhile.
        case waiting
        /// Answered early with `Connection: close` (400, 404, 405, 413, 414, 431); nothing more is read.
        case closing
    }

    /// What a route's gate (`client_authentication`, `rate_limit`) decided at the request's head: a refusal is answered
    /// at once, before the body is read (and before `100 Continue`).
    enum HeadAdmission {
        /// The request as the gate left it (credentials hidden, consumer set), and the gate's answer headers.
        case admitted(IngestRequest, headers: [(String, String)])
        /// Verifying (a password hash, off the event loop) while the body arrives.
        case deciding(EventLoopFuture<RouteAccess.Admission>)
    }

    private var state = State.idle
    /// The routes of the configuration in force (a reload replaces them between two requests).
    private let live: LiveRoutes
    /// Shared by every generation: open connections and closes by reason.
    private let connections: ConnectionMetrics
    /// Shared by every generation: answers no route took.
    private let unrouted: ResponseCounters
    private let endpoints: BuiltInEndpoints
    private let limits: RequestLimits
    private let deadlines: RequestDeadlines
    /// On an HTTP/2 stream: `request_read_timeout`, from the request's head until its end.
    private var streamTimer: Scheduled<Void>?

    /// Who bounds a request's time: the connection's ``ConnectionGuard`` (HTTP/1.x, which sees the raw bytes), or on an
    /// HTTP/2 stream the handler itself (`request_read_timeout` from the head to the end of the body; the connection's
    /// idleness is ``HTTP2ConnectionGuard``'s).
    enum RequestDeadlines {
        case connection(ConnectionGuard)
        case stream(readTimeout: TimeAmount)
    }
    /// The connection's TLS (`server.tls`), where the client certificate's identity is.
    private let tls: TLSConnectionHandler?
    private let logger: Logger
    /// The counters of the request being answered: its route's, or `unrouted`.
    private var counters: ResponseCounters
    /// When the head of the request being answered arrived (for the request duration histogram).
    private var requestStart = NIODeadline.now()

    /// Paths of the built-in `GET` endpoints (`nil`: off), and whether the listener serves the routes (the
    /// `server.admin` listener does not; it alone may answer `POST` on the reload path).
    struct BuiltInEndpoints: Sendable {
        var health: String?
        var metrics: String?
        var ready: String?
        var reload: String?
        var servesRoutes = true
    }

    /// Bounds on a request's head (`server.max_header_size`, `max_headers`, `max_uri_length`) and message.
    struct RequestLimits: Sendable {
        var maxHeaderSize: Int
        var maxHeaders: Int
        var maxURILength: Int
        var message: MessageLimits
    }

    /// `server.request_id_header` and `server.access_log`.
    struct RequestTracking: Sendable {
        var requestIDHeader: String?
        var accessLog = false
    }

    private let tracking: RequestTracking
    /// The id of the request being answered (`request_id_header`), and what the access log line needs.
    private var requestID: String?
    private var requestIDs = RequestID.Sequence()
    private var requestLine: (method: HTTPMethod, uri: String, bodyBytes: Int) = (.GET, "", 0)

    /// Runs a reload for `POST` on the reload path.
    private let reloader: ConfigurationReloadEndpoint?

    init(
        live: LiveRoutes, endpoints: BuiltInEndpoints, limits: RequestLimits, deadlines: RequestDeadlines,
        tls: TLSConnectionHandler? = nil, tracking: RequestTracking = RequestTracking(), reloader: ConfigurationReloadEndpoint? = nil,
        logger: Logger
    ) {
        self.tracking = tracking
        self.tls = tls
        self.live = live
        let observability = live.generation.observability
        connections = observability.connections
        unrouted = observability.unrouted
        self.reloader = reloader
        self.endpoints = endpoints
        self.limits = limits
        self.deadlines = deadlines
        self.logger = logger
        counters = unrouted
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            receiveHead(head, context: context)
        case .body(var chunk):
            guard case .receiving(let head, let match, let contentType, var body, let lease, let admission) = state else { return }
            let limit = match.ingestor.route.maxBodySize
            if (body?.readableBytes ?? 0) + chunk.readableBytes > limit {
                respondAndClose(.payloadTooLarge(limit: limit), head: head, context: context)
                return
            }
            if body == nil {
                body = chunk
            } else {
                state = .idle  // drop the enum's reference so that appending does not copy the buffer
                body!.writeBuffer(&chunk)
            }
            state = .receiving(head: head, match: match, contentType: contentType, body: body, lease: lease, admission: admission)
        case .end:
            switch state {
            case .receiving(let head, let match, let contentType, let body, let lease, let admission):
                requestReceived()
                counters.recordBody(bytes: body?.readableBytes ?? 0)
                requestLine.bodyBytes = body?.readableBytes ?? 0
                let body = body ?? context.channel.allocator.buffer(capacity: 0)
                let outcome: IngestOutcome
                switch admission {
                case nil:
                    let request = makeRequest(head, contentType: contentType, body: body, match: match, context: context)
                    outcome = match.ingestor.ingest(request, match: match, eventLoop: context.eventLoop)
                case .admitted(var request, let headers):
                    request.body = body
                    outcome = match.ingestor.ingest(admitted: request, headers: headers, match: match, eventLoop: context.eventLoop)
                case .deciding(let decision):
                    let eventLoop = context.eventLoop
                    outcome = .pending(decision.flatMap { admission in
                        switch admission {
                        case .refused(let response):
                            return eventLoop.makeSucceededFuture(match.ingestor.presented(response))
                        case .admitted(var request, let headers):
                            request.body = body
                            switch match.ingestor.ingest(admitted: request, headers: headers, match: match, eventLoop: eventLoop) {
                            case .immediate(let response): return eventLoop.makeSucceededFuture(response)
                            case .pending(let answer): return answer
                            }
                        }
                    })
                }
                switch outcome {
                case .immediate(let response):
                    respond(response, head: head, context: context)
                case .pending(let future):
                    state = .waiting
                    future.assumeIsolated().whenComplete { result in
                        withExtendedLifetime(lease) {}
                        switch result {
                        case .success(let response): self.respond(response, head: head, context: context)
                        case .failure(let error):
                            self.respond(.error(.internalServerError, code: "internal_error", "\(error)"), head: head, context: context)
                        }
                    }
                }
            case .discarding(let head, let response):
                requestReceived()
                respond(response, head: head, context: context)
            case .reloading(let head):
                requestReceived()
                guard let reloader else { return }
                state = .waiting
                let answer = context.eventLoop.makeFutureWithTask { await reloader.run() }
                answer.assumeIsolated().whenSuccess { response in self.respond(response, head: head, context: context) }
            case .idle, .waiting, .closing:
                break
            }
        }
    }

    /// The request as routes see it: the head (with the request id), the body, and what the connection tells.
    private func makeRequest(
        _ head: HTTPRequestHead, contentType: String?, body: ByteBuffer, match: RouteTable.Match, context: ChannelHandlerContext
    ) -> IngestRequest {
        var headers = head.headers
        // The id goes with the request (forward_headers, record header rules, the workflow's request.id).
        if let name = tracking.requestIDHeader, let requestID, headers.first(name: name) != requestID {
            headers.replaceOrAdd(name: name, value: requestID)
        }
        var request = IngestRequest(method: head.method, uri: head.uri, headers: headers, body: body, contentType: .some(contentType),
                                    limits: limits.message)
        if match.ingestor.workflow != nil {
            let remote = context.channel.remoteAddress
            request.connection = ConnectionFacts(clientIP: remote?.ipAddress, clientPort: remote?.port,
                                                 localPort: context.channel.localAddress?.port, version: head.version)
        }
        request.requestID = requestID
        if let tls {
            request.connection.isTLS = true
            request.clientCertificate = tls.clientCertificate
        }
        return request
    }

    private func receiveHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        requestStarted(context: context)
        requestStart = .now()
        requestID = tracking.requestIDHeader.map { name in
            head.headers.first(name: name).flatMap { RequestID.accepting($0) } ?? requestIDs.next()
        }
        if tracking.accessLog { requestLine = (head.method, head.uri, 0) }
        let path = IngestRequest.path(of: head.uri)
        counters = unrouted
        let facts = RequestHeaderFacts(head.headers)
        if let refusal = refusal(of: head, facts: facts) {
            respondAndClose(refusal, head: head, context: context)
            return
        }
        if head.method == .GET, let endpoint = builtInEndpoint(at: path) {
            if facts.hasBody {
                respondAndClose(.error(.badRequest, code: "unexpected_body", "GET \(endpoint) takes no body"), head: head, context: context)
            } else {
                let observability = live.generation.observability
                let answer = endpoint == endpoints.health ? observability.healthResponse()
                    : endpoint == endpoints.ready ? observability.readyResponse() : observability.metricsResponse()
                state = .discarding(head: head, response: answer)
            }
            return
        }
        if let reload = endpoints.reload, reloader != nil, path == reload {
            guard head.method == .POST else {
                respondAndClose(.methodNotAllowed(head.method, allowed: ["POST"]), head: head, context: context)
                return
            }
            state = .reloading(head: head)
            return
        }
        guard endpoints.servesRoutes else {
            respondAndClose(.notFound(path: path), head: head, context: context)
            return
        }
        let generation = live.generation
        switch generation.routes.lookup(method: head.method, path: path) {
        case .notFound:
            respondAndClose(.notFound(path: path), head: head, context: context)
        case .methodNotAllowed(let allowed):
            respondAndClose(.methodNotAllowed(head.method, allowed: allowed), head: head, context: context)
        case .invalidPath(let reason):
            respondAndClose(.error(.badRequest, code: "invalid_path", reason), head: head, context: context)
        case .found(let match):
            counters = match.ingestor.responses
            let limit = match.ingestor.route.maxBodySize
            if let length = facts.contentLength, length > limit {
                respondAndClose(.payloadTooLarge(limit: limit), head: head, context: context)
                return
            }
            var admission: HeadAdmission?
            if let access = match.ingestor.access {
                let request = makeRequest(head, contentType: facts.contentType, body: ByteBuffer(), match: match, context: context)
                switch access.admit(request, eventLoop: context.eventLoop) {
                case .immediate(.refused(let response)):
                    let refusal = match.ingestor.presented(response)
                    if !facts.expectsContinue, !facts.hasTransferEncoding, (facts.contentLength ?? 0) <= Self.discardedBodyLimit {
                        // A small body is read and dropped, and the connection kept (a client refused 429 comes back).
                        state = .discarding(head: head, response: refusal)
                    } else {
                        // A larger body is never read: the connection closes after the answer.
                        respondAndClose(refusal, head: head, context: context)
                    }
                    return
                case .immediate(.admitted(let request, let headers)):
                    admission = .admitted(request, headers: headers)
                case .pending(let decision):
                    admission = .deciding(decision)
                }
            }
            if facts.expectsContinue {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            state = .receiving(head: head, match: match, contentType: facts.contentType, body: nil, lease: generation.lease(),
                               admission: admission)
        }
    }

    private func builtInEndpoint(at path: Substring) -> String? {
        if let health = endpoints.health, path == health { return health }
        if let metrics = endpoints.metrics, path == metrics { return metrics }
        if let ready = endpoints.ready, path == ready { return ready }
        return nil
    }

    /// The answer to a head over a limit, or with text that is not UTF-8 (the decoder has replaced such bytes with
    /// U+FFFD; a value with U+FFFD is refused, as the message must carry what the client sent).
    private func refusal(of head: HTTPRequestHead, facts: RequestHeaderFacts) -> IngestResponse? {
        let uriLength = head.uri.utf8.count
        if uriLength > limits.maxURILength {
            return .error(.uriTooLong, code: "uri_too_long",
                          "the request target is \(uriLength) bytes; the limit is \(limits.maxURILength) (server.max_uri_length)")
        }
        if head.headers.count > limits.maxHeaders {
            return .requestHeaderFieldsTooLarge("the request has \(head.headers.count) header fields; the limit is \(limits.maxHeaders) (server.max_headers)")
        }
        if facts.byteCount > limits.maxHeaderSize {
            return .requestHeaderFieldsTooLarge(
                "the request's headers are \(facts.byteCount) bytes; the limit is \(limits.maxHeaderSize) (server.max_header_size)")
        }
        if let name = facts.headerWithReplacementCharacter {
            return .error(.badRequest, code: "invalid_header", "the value of header '\(name)' is not valid UTF-8")
        }
        if head.uri.utf8.containsReplacementCharacter {
            return .error(.badRequest, code: "invalid_path", "the request target is not valid UTF-8")
        }
        if let questionMark = head.uri.utf8.firstIndex(of: UInt8(ascii: "?")) {
            let count = FormArguments.count(in: head.uri.utf8[head.uri.utf8.index(after: questionMark)...])
            if count > limits.message.maximumFormFields {
                return .error(.badRequest, code: "invalid_query",
                              "the query string has \(count) arguments; the limit is \(limits.message.maximumFormFields) (server.max_form_fields)")
            }
        }
        return nil
    }

    private func respondAndClose(_ response: IngestResponse, head: HTTPRequestHead, context: ChannelHandlerContext) {
        connections.closed(.refusedRequest)
        respond(response, version: head.version, keepAlive: false, context: context)
        state = .closing
    }

    /// The largest body of a request refused at its head that is read (and dropped) to keep the connection open.
    static let discardedBodyLimit = 64 * 1024

    /// The headers of the most frequent answer (200 "message sent" on a keep-alive connection), built once.
    private static let messageSentHeaders: HTTPHeaders = [
        "content-type": "application/json", "content-length": String(IngestResponse.messageSent.body.readableBytes),
    ]

    private func respond(_ response: IngestResponse, head: HTTPRequestHead, context: ChannelHandlerContext) {
        respond(response, version: head.version, keepAlive: head.isKeepAlive, context: context)
    }

    private func respond(_ response: IngestResponse, version: HTTPVersion, keepAlive: Bool, context: ChannelHandlerContext) {
        counters.record(response.status, code: response.code, elapsed: .nanoseconds((NIODeadline.now() - requestStart).nanoseconds))
        var headers: HTTPHeaders
        if response.status == .ok, response.headers.isEmpty, response.body == IngestResponse.messageSent.body {
            headers = Self.messageSentHeaders
        } else {
            headers = HTTPHeaders()
            headers.reserveCapacity(4 + response.headers.count)
            headers.add(name: "content-type", value: response.contentType)
            headers.add(name: "content-length", value: String(response.body.readableBytes))
            for (name, value) in response.headers { headers.add(name: name, value: value) }
        }
        if let name = tracking.requestIDHeader, let requestID { headers.add(name: name, value: requestID) }
        if tracking.accessLog { logAccess(response, context: context) }
        if !keepAlive {
            headers.add(name: "connection", value: "close")
        } else if version.major == 1, version.minor == 0 {
            headers.add(name: "connection", value: "keep-alive")
        }
        state = .idle
        if case .connection(let connectionGuard) = deadlines { connectionGuard.requestAnswered(keepAlive: keepAlive) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        guard !keepAlive else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)  // no promise to allocate
            return
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        switch deadlines {
        case .connection:
            // ConnectionGuard drops what the client still sends and closes the connection after a linger time.
            ConnectionGuard.closeOutput(after: written, context: context)
        case .stream:
            // The stream ends (reset if the client is still sending); the connection goes on.
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    private func requestStarted(context: ChannelHandlerContext) {
        switch deadlines {
        case .connection(let connectionGuard):
            connectionGuard.requestStarted()
        case .stream(let readTimeout):
            streamTimer?.cancel()
            streamTimer = context.eventLoop.assumeIsolated().scheduleTask(in: readTimeout) { [self] in
                self.streamTimer = nil
                self.requestTimedOut(context: context)
            }
        }
    }

    private func requestReceived() {
        switch deadlines {
        case .connection(let connectionGuard):
            connectionGuard.requestReceived()
        case .stream:
            streamTimer?.cancel()
            streamTimer = nil
        }
    }

    /// An HTTP/2 stream whose request did not arrive within `request_read_timeout`: 408, and the stream is reset.
    private func requestTimedOut(context: ChannelHandlerContext) {
        let head: HTTPRequestHead
        switch state {
        case .receiving(let receivedHead, _, _, _, _, _): head = receivedHead
        case .discarding(let receivedHead, _), .reloading(let receivedHead): head = receivedHead
        case .idle, .waiting, .closing: return
        }
        connections.closed(.requestTimeout)
        respond(.error(.requestTimeout, code: "request_timeout", "the request did not arrive within server.request_read_timeout"),
                version: head.version, keepAlive: false, context: context)
        state = .closing
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        streamTimer?.cancel()
        streamTimer = nil
    }

    /// `server.access_log`: one line per answered request.
    private func logAccess(_ response: IngestResponse, context: ChannelHandlerContext) {
        let path = requestLine.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        var metadata: Logger.Metadata = [
            "method": "\(requestLine.method.rawValue)", "path": "\(path)", "route": "\(counters.route)",
            "status": "\(response.status.code)", "bytes_in": "\(requestLine.bodyBytes)", "bytes_out": "\(response.body.readableBytes)",
            "duration_ms": "\(Double((NIODeadline.now() - requestStart).nanoseconds / 1000) / 1000)",
        ]
        if let requestID { metadata["request_id"] = "\(requestID)" }
        if let code = response.code { metadata["code"] = "\(code)" }
        if let peer = context.channel.remoteAddress?.ipAddress { metadata["client"] = "\(peer)" }
        logger.info("request", metadata: metadata)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            logger.debug("connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        // A connection that is already closed (an unfinished request at EOF, or closed while quiescing) gets no answer.
        guard context.channel.isActive else { return }
        switch state {
        case .closing, .waiting:
            context.close(promise: nil)
        case .idle, .receiving, .discarding, .reloading:
            // No answer has started: the client is told what was wrong, then the connection is closed.
            counters = unrouted
            connections.closed(.malformedRequest)
            if let suppressed = connections.shouldLog(.malformedRequest) {
                var metadata: Logger.Metadata = ["error": "\(parserError)"]
                if let peer = context.channel.remoteAddress { metadata["peer"] = "\(peer)" }
                if suppressed > 0 { metadata["not_logged_since_last"] = "\(suppressed)" }
                logger.notice("closing a connection after malformed HTTP", metadata: metadata)
            }
            let response: IngestResponse = if parserError == .headerOverflow {
                .requestHeaderFieldsTooLarge(
                    "the request head is larger than the HTTP parser accepts (at most \(limits.maxHeaders) header fields, "
                        + "server.max_header_size + server.max_uri_length bytes)")
            } else {
                .error(.badRequest, code: "malformed_request", "malformed HTTP request: \(parserError)")
            }
            respond(response, version: .http1_1, keepAlive: false, context: context)
            state = .closing
        }
    }
}

extension String.UTF8View {
    /// Whether the text holds U+FFFD (`EF BF BD`), which is what NIO's decoder turns bytes that are not UTF-8 into.
    var containsReplacementCharacter: Bool {
        let found = withContiguousStorageIfAvailable { bytes -> Bool in
            var index = 0
            while index + 2 < bytes.count {
                if bytes[index] == 0xEF, bytes[index + 1] == 0xBF, bytes[index + 2] == 0xBD { return true }
                index += 1
            }
            return false
        }
        return found ?? String(self).unicodeScalars.contains("\u{FFFD}")
    }
}
