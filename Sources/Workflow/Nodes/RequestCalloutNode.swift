import Callout
import Crypto
import Foundation
import JSON

/// One request-callout callout (``RequestCalloutSettings``), run as a workflow node: builds the request from its
/// templates, the client's request (what `forward` passes on) and earlier callouts, answers from the cache when it can,
/// applies the error policy (`fail`, `retry`, `continue`), and gives `{request: {params, retries, n_retries},
/// response: {status, headers, body}}`, what Kong keeps in `kong.ctx.shared.callouts.NAME`.
///
/// A URL with placeholders is checked against the destination policy (`call_allowed_hosts`), like a `call` node's URL
/// from request data: Kong has no such check, and a template that reads a header could otherwise reach any address.
struct RequestCalloutNode {
    let work: AsynchronousNodeWork
    /// The cached response, when there is one: the run goes on without a child task.
    let cachedAnswer: ImmediateNodeWork

    init(settings: RequestCalloutSettings, policy: CalloutDestinationPolicy?, client: CalloutClient, cache: WorkflowCache?) {
        work = { inputs, deadline async throws(WorkflowNodeError) -> NodeOutputs in
            try await Self.run(settings, policy: policy, client: client, cache: cache, inputs: inputs, deadline: deadline)
        }
        cachedAnswer = { inputs, deadline in
            // Only the memory cache answers without waiting; a Redis lookup is the asynchronous work's.
            guard settings.cacheTTL != nil, case .memory(let cache)? = cache else { return nil }
            let client = ClientRequest(inputs)
            let context = client.context(callouts: inputs.ports.filter { $0.key != "request" })
            guard let request = try? Self.build(settings, context: context, client: client, policy: policy, deadline: deadline),
                  let cached = cache.value(for: Self.cacheKey(settings.name, request)), let stored = StoredResponse(cached) else { return nil }
            return Self.outputs(settings, request: request, response: stored, retries: [], cached: true)
        }
    }

    /// Headers a callout never takes from the client's request (the HTTP client sets its own).
    static let unforwardedHeaders: Set<String> = ["host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade",
                                                  "proxy-connection", "expect"]
    static let userAgent = "kbridge/request-callout"

    static func run(
        _ settings: RequestCalloutSettings, policy: CalloutDestinationPolicy?, client: CalloutClient, cache: WorkflowCache?, inputs: NodeInputs,
        deadline: ContinuousClock.Instant
    ) async throws(WorkflowNodeError) -> NodeOutputs {
        let client_ = ClientRequest(inputs)
        let context = client_.context(callouts: inputs.ports.filter { $0.key != "request" })
        let request = try build(settings, context: context, client: client_, policy: policy, deadline: deadline)

        let cacheKey = settings.cacheTTL.map { _ in Self.cacheKey(settings.name, request) }
        if let cacheKey, let cache, let cached = await lookUp(cacheKey, in: cache), let stored = StoredResponse(cached) {
            return Self.outputs(settings, request: request, response: stored, retries: [], cached: true)
        }

        var retries: [JSONValue] = []
        while true {
            var attempt = request
            attempt.timeout = min(request.timeout, deadline - .now)
            guard attempt.timeout > .zero else { throw WorkflowNodeError("callout \(settings.name): the workflow's deadline passed") }
            let failure: (reason: String, detail: JSONValue, response: StoredResponse?)
            do throws(CalloutError) {
                let response = StoredResponse(try await client.execute(attempt))
                guard settings.errorStatuses.contains(response.status) else {
                    if let cacheKey, let cache { await store(response.value, for: cacheKey, seconds: settings.cacheTTL ?? 0, in: cache) }
                    return outputs(settings, request: request, response: response, retries: retries, cached: false)
                }
                failure = ("code", .integer(response.status), response)
            } catch {
                if error.kind == .cancelled { throw WorkflowNodeError("callout \(settings.name): cancelled") }
                failure = ("error", .string(error.description), nil)
            }
            if settings.onError == .retry, retries.count < settings.retries, ContinuousClock.now < deadline {
                retries.append(.object(JSONObject([("reason", .string(failure.reason)), (failure.reason == "code" ? "http_code" : "err", failure.detail)])))
                continue
            }
            if settings.onError == .continue {
                return outputs(settings, request: request, response: failure.response, retries: retries, cached: false)
            }
            let what = failure.response.map { "HTTP status \($0.status)" } ?? failure.detail.stringValue ?? "error"
            let message = JSONWriter.bytes(.object(JSONObject([("message", .string(settings.errorResponseMessage.render(context)))])))
            throw WorkflowNodeError(
                "callout \(settings.name) failed\(retries.isEmpty ? "" : " after \(retries.count) retries"): \(what)",
                response: WorkflowResponse(status: settings.errorResponseCode, headers: [], body: message, contentType: "application/json"))
        }
    }

    // MARK: - The cache

    /// A cached response, or `nil`. Kong's request-callout has no `bypass_on_error`: a Redis failure is a miss, and
    /// the callout is made.
    static func lookUp(_ key: String, in cache: WorkflowCache) async -> JSONValue? {
        switch cache {
        case .memory(let memory): return memory.value(for: key)
        case .redis(let redis): return try? await redis.value(for: key)
        }
    }

    /// Stores a response; a Redis failure leaves it uncached (the callout's answer stands).
    static func store(_ value: JSONValue, for key: String, seconds: Int, in cache: WorkflowCache) async {
        guard seconds > 0 else { return }
        switch cache {
        case .memory(let memory): _ = memory.store(value, for: key, ttl: .seconds(seconds))
        case .redis(let redis): try? await redis.store(value, for: key, seconds: seconds)
        }
    }

    // MARK: - The request

    /// What the callout sees of the client's request (the `request` input).
    struct ClientRequest {
        var headers: [(name: String, value: String)] = []
        var query = JSONObject()
        var body: JSONValue?

        init(_ inputs: NodeInputs) {
            guard let request = inputs.ports["request"]?.objectValue else { return }
            if let map = request["headers"]?.objectValue {
                for (name, value) in map {
                    for element in value.arrayValue ?? [value] { if let text = element.stringValue { headers.append((name, text)) } }
                }
            }
            query = request["query"]?.objectValue ?? JSONObject()
            body = request["body"]
        }

        func context(callouts: [String: JSONValue]) -> CalloutContext {
            CalloutContext(headers: headers, query: query, callouts: callouts)
        }

        /// The body as a JSON object for custom fields: the client's when it is one, else empty.
        var bodyObject: JSONObject { body?.objectValue ?? JSONObject() }
    }

    static func build(
        _ settings: RequestCalloutSettings, context: CalloutContext, client: ClientRequest, policy: CalloutDestinationPolicy?,
        deadline: ContinuousClock.Instant
    ) throws(WorkflowNodeError) -> CalloutRequest {
        let urlText = settings.url.render(context)
        var url: CalloutURL
        do throws(CalloutError) {
            if settings.url.isConstant {
                url = try CalloutURL(parsing: urlText)
            } else {
                guard let policy else {
                    throw CalloutError(.refusedDestination, "a URL built from templates needs call_allowed_hosts")
                }
                url = try policy.check(urlText)
            }
            url = try CalloutURL(parsing: url.string.prefix { $0 != "?" } + queryString(settings, existing: url, context: context, client: client))
        } catch {
            throw WorkflowNodeError("callout \(settings.name): \(error.description)")
        }

        var headers: [(String, String)] = []
        if settings.headers.forward {
            headers = client.headers.filter { !unforwardedHeaders.contains($0.name.lowercased()) }.map { ($0.name, $0.value) }
        }
        var body: [UInt8]?
        if !settings.body.custom.isEmpty {
            var object = settings.body.forward || settings.body.decode ? client.bodyObject : JSONObject()
            apply(settings.body.custom, to: &object, context: context)
            body = JSONWriter.bytes(.object(object))
            set(&headers, "Content-Type", "application/json")
        } else if settings.body.forward, let value = client.body {
            let encoded = BodyCodec.encode(value)
            body = encoded.bytes
            if let type = encoded.contentType, !headers.contains(where: { $0.0.lowercased() == "content-type" }) { headers.append(("Content-Type", type)) }
        }
        for (name, value) in settings.headers.custom {
            switch value {
            case .remove: headers.removeAll { $0.0.lowercased() == name.lowercased() }
            case .template(let template): set(&headers, name, template.render(context))
            case .literal(let literal): set(&headers, name, CalloutTemplate.text(of: literal))
            }
        }
        if !headers.contains(where: { $0.0.lowercased() == "user-agent" }) { headers.append(("User-Agent", userAgent)) }
        var timeout = deadline - .now
        if let limit = settings.timeout, limit > .zero { timeout = min(timeout, limit) }
        return CalloutRequest(method: settings.method, url: url.string, headers: headers, body: body, timeout: timeout,
                              tlsVerify: settings.sslVerify, serverName: settings.serverName, proxy: settings.proxy)
    }

    /// The query: the URL's own arguments, then the client's (`forward`), then `custom`; a name set later replaces the
    /// same name set earlier (Kong 3.10.0.2), `null` removes it.
    static func queryString(_ settings: RequestCalloutSettings, existing url: CalloutURL, context: CalloutContext, client: ClientRequest) -> String {
        var pairs: [(name: String, value: String?)] = []
        if let mark = url.pathAndQuery.firstIndex(of: "?") {
            for part in url.pathAndQuery[url.pathAndQuery.index(after: mark)...].split(separator: "&", omittingEmptySubsequences: true) {
                let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = formDecoded(pieces[0])
                pairs.append((name, pieces.count > 1 ? formDecoded(pieces[1]) : nil))
            }
        }
        func replace(_ name: String, with values: [String?]) {
            pairs.removeAll { $0.name == name }
            pairs += values.map { (name, $0) }
        }
        if settings.query.forward {
            for (name, value) in client.query {
                replace(name, with: (value.arrayValue ?? [value]).map { element in element == .null || element == .bool(true) ? nil : CalloutTemplate.text(of: element) })
            }
        }
        for (name, value) in settings.query.custom {
            switch value {
            case .remove: pairs.removeAll { $0.name == name }
            case .template(let template): replace(name, with: [template.render(context)])
            case .literal(let literal): replace(name, with: [CalloutTemplate.text(of: literal)])
            }
        }
        guard !pairs.isEmpty else { return "" }
        return "?" + pairs.map { pair in pair.value.map { "\(FormEncoding.escape(pair.name))=\(FormEncoding.escape($0))" } ?? FormEncoding.escape(pair.name) }
            .joined(separator: "&")
    }

    static func formDecoded(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    static func set(_ headers: inout [(String, String)], _ name: String, _ value: String) {
        headers.removeAll { $0.0.lowercased() == name.lowercased() }
        headers.append((name, value))
    }

    /// Sets (or, for `null`, removes) custom fields of a JSON object.
    static func apply(_ custom: [(name: String, value: CustomValue)], to object: inout JSONObject, context: CalloutContext) {
        for (name, value) in custom {
            switch value {
            case .remove: object[name] = nil
            case .literal(let literal): object[name] = literal
            case .template(let template): object[name] = template.value(in: context) ?? .null
            }
        }
    }

    // MARK: - Upstream

    /// The `upstream` customizations: what `service_request` receives. Headers merge into the client's (`null`
    /// removes one, so `forward: false` removes each of the client's); the query and a body with custom fields are
    /// replaced whole; `body.forward: false` empties the body.
    static func upstream(_ settings: UpstreamSettings, inputs: NodeInputs) -> NodeOutputs {
        let client = ClientRequest(inputs)
        let context = client.context(callouts: inputs.ports.filter { $0.key != "request" })
        var ports: [String: JSONValue] = [:]
        var headers = JSONObject()
        if !settings.headers.forward { for (name, _) in client.headers { headers[name] = .null } }
        for (name, value) in settings.headers.custom {
            switch value {
            case .remove: headers[name] = .null
            case .template(let template): headers[name] = .string(template.render(context))
            case .literal(let literal): headers[name] = .string(CalloutTemplate.text(of: literal))
            }
        }
        if headers.count > 0 { ports["headers"] = .object(headers) }
        if !settings.query.forward || !settings.query.custom.isEmpty {
            var query = settings.query.forward ? client.query : JSONObject()
            for (name, value) in settings.query.custom {
                switch value {
                case .remove: query[name] = nil
                case .template(let template): query[name] = .string(template.render(context))
                case .literal(let literal): query[name] = .string(CalloutTemplate.text(of: literal))
                }
            }
            ports["query"] = .object(query)
        }
        if !settings.body.custom.isEmpty {
            var object = settings.body.forward && settings.body.decode ? client.bodyObject : JSONObject()
            apply(settings.body.custom, to: &object, context: context)
            ports["body"] = .object(object)
        } else if !settings.body.forward {
            ports["body"] = .string("")
        }
        return .fields(ports, order: ["body", "headers", "query"])
    }

    // MARK: - The response

    /// A response as the cache keeps it.
    struct StoredResponse {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: String

        init(_ response: CalloutResponse) {
            status = response.status
            headers = response.headers.map { (name: $0.0, value: $0.1) }
            body = String(decoding: response.body, as: UTF8.self)
        }

        init?(_ value: JSONValue) {
            guard let object = value.objectValue, let status = object["status"]?.numberValue?.int64.flatMap({ Int(exactly: $0) }),
                  case .string(let body)? = object["body"], let headerList = object["headers"]?.arrayValue else { return nil }
            self.status = status
            self.body = body
            headers = headerList.compactMap { pair in
                guard let items = pair.arrayValue, items.count == 2, let name = items[0].stringValue, let value = items[1].stringValue else { return nil }
                return (name, value)
            }
        }

        var value: JSONValue {
            .object(JSONObject([
                ("status", .integer(status)), ("headers", .array(headers.map { .array([.string($0.name), .string($0.value)]) })), ("body", .string(body)),
            ]))
        }
    }

    static func outputs(
        _ settings: RequestCalloutSettings, request: CalloutRequest, response: StoredResponse?, retries: [JSONValue], cached: Bool
    ) -> NodeOutputs {
        var params = JSONObject([("url", .string(request.url)), ("method", .string(request.method))])
        params["headers"] = .object(HeaderMap.object(from: request.headers.map { (name: $0.0, value: $0.1) }))
        if let body = request.body { params["body"] = .string(String(decoding: body, as: UTF8.self)) }
        var requestValue = JSONObject([("params", .object(params))])
        if settings.onError == .retry {
            requestValue["retries"] = .array(retries)
            requestValue["n_retries"] = .integer(retries.count)
        }
        var ports: [String: JSONValue] = ["request": .object(requestValue)]
        if let response {
            var responseValue = JSONObject([("status", .integer(response.status))])
            if settings.storeResponseHeaders { responseValue["headers"] = .object(HeaderMap.object(from: response.headers)) }
            if settings.storeResponseBody {
                if settings.decodeResponseBody, let decoded = try? JSONParser.parse(Array(response.body.utf8)) {
                    responseValue["body"] = decoded
                } else {
                    responseValue["body"] = .string(response.body)
                }
            }
            if settings.cacheTTL != nil { responseValue["cached"] = .bool(cached) }
            ports["response"] = .object(responseValue)
        }
        return .fields(ports, order: ["request", "response"])
    }

    /// SHA-256 of what makes the request (Kong 3.12: the callout's name, method, URL with its query, headers sorted by
    /// name, body); the route's own cache holds it, so routes never share entries.
    static func cacheKey(_ name: String, _ request: CalloutRequest) -> String {
        var hash = SHA256()
        for part in [name, request.method, request.url] {
            hash.update(data: Array(part.utf8))
            hash.update(data: [0])
        }
        for (headerName, value) in request.headers.sorted(by: { ($0.0.lowercased(), $0.1) < ($1.0.lowercased(), $1.1) }) {
            hash.update(data: Array("\(headerName.lowercased()):\(value)".utf8))
            hash.update(data: [0])
        }
        hash.update(data: request.body ?? [])
        return "request-callout:" + hash.finalize().map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
