import Logging
import NIOCore
import NIOHTTP1

/// The ingest end of each connection's pipeline (after NIO's HTTP/1.1 decoder and pipelining handler):
/// routes a request at its head, collects its body up to the route's limit, hands it to the route's
/// ``RouteIngestor`` and writes the answer, now or when the broker's delivery report completes it.
///
/// Written instead of using swift-nio-extras' aggregator because the limit is the route's (known only once the
/// head is routed), unknown routes must be answered without buffering their bodies, and every error is JSON.
final class HTTPIngestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// Collecting the body of a routed request.
        case receiving(head: HTTPRequestHead, match: RouteTable.Match, contentType: String?, body: ByteBuffer?)
        /// The answer is known (404, 405); the rest of the request is read and dropped.
        case discarding(head: HTTPRequestHead, response: IngestResponse)
        /// Waiting for the broker; the pipelining handler holds back any further request meanwhile.
        case waiting
        /// Answered early with `Connection: close` (413); nothing more is read.
        case closing
    }

    private var state = State.idle
    private let routes: RouteTable
    private let observability: Observability
    private let endpoints: BuiltInEndpoints
    private let logger: Logger
    /// The counters of the request being answered: its route's, or `observability.unrouted`.
    private var counters: ResponseCounters

    /// Paths of the built-in `GET` endpoints (`nil`: off).
    struct BuiltInEndpoints: Sendable {
        var health: String?
        var metrics: String?
    }

    init(routes: RouteTable, observability: Observability, endpoints: BuiltInEndpoints, logger: Logger) {
        self.routes = routes
        self.observability = observability
        self.endpoints = endpoints
        self.logger = logger
        counters = observability.unrouted
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            receiveHead(head, context: context)
        case .body(var chunk):
            guard case .receiving(let head, let match, let contentType, var body) = state else { return }
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
            state = .receiving(head: head, match: match, contentType: contentType, body: body)
        case .end:
            switch state {
            case .receiving(let head, let match, let contentType, let body):
                let request = IngestRequest(method: head.method, uri: head.uri, headers: head.headers,
                                            body: body ?? context.channel.allocator.buffer(capacity: 0), contentType: .some(contentType))
                switch match.ingestor.ingest(request, match: match, eventLoop: context.eventLoop) {
                case .immediate(let response):
                    respond(response, head: head, context: context)
                case .pending(let future):
                    state = .waiting
                    future.assumeIsolated().whenComplete { result in
                        switch result {
                        case .success(let response): self.respond(response, head: head, context: context)
                        case .failure(let error):
                            self.respond(.error(.internalServerError, code: "internal_error", "\(error)"), head: head, context: context)
                        }
                    }
                }
            case .discarding(let head, let response):
                respond(response, head: head, context: context)
            case .idle, .waiting, .closing:
                break
            }
        }
    }

    private func receiveHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        let path = head.uri.firstIndex(of: "?").map { head.uri[..<$0] } ?? Substring(head.uri)
        counters = observability.unrouted
        if head.method == .GET {
            if let health = endpoints.health, path == health {
                state = .discarding(head: head, response: observability.healthResponse())
                return
            }
            if let metrics = endpoints.metrics, path == metrics {
                state = .discarding(head: head, response: observability.metricsResponse())
                return
            }
        }
        switch routes.lookup(method: head.method, path: path) {
        case .notFound:
            state = .discarding(head: head, response: .notFound(path: path))
        case .methodNotAllowed(let allowed):
            state = .discarding(head: head, response: .methodNotAllowed(head.method, allowed: allowed))
        case .found(let match):
            counters = match.ingestor.responses
            let limit = match.ingestor.route.maxBodySize
            let facts = RequestHeaderFacts(head.headers)
            if let length = facts.contentLength, length > limit {
                respondAndClose(.payloadTooLarge(limit: limit), head: head, context: context)
                return
            }
            if facts.expectsContinue {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            state = .receiving(head: head, match: match, contentType: facts.contentType, body: nil)
        }
    }

    private func respondAndClose(_ response: IngestResponse, head: HTTPRequestHead, context: ChannelHandlerContext) {
        respond(response, head: head, context: context, close: true)
        state = .closing
    }

    /// The headers of the most frequent answer (200 "message sent" on a keep-alive connection), built once.
    private static let messageSentHeaders: HTTPHeaders = [
        "content-type": "application/json", "content-length": String(IngestResponse.messageSent.body.readableBytes),
    ]

    private func respond(_ response: IngestResponse, head: HTTPRequestHead, context: ChannelHandlerContext, close: Bool = false) {
        let keepAlive = head.isKeepAlive && !close
        counters.record(response.status)
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
        if !keepAlive {
            headers.add(name: "connection", value: "close")
        } else if head.version.major == 1, head.version.minor == 0 {
            headers.add(name: "connection", value: "keep-alive")
        }
        state = .idle
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
