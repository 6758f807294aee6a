import Callout
import JSON

/// Datakit's `call` node: an HTTP request through the shared ``CalloutClient``. The static `url` is the operator's;
/// a URL that arrives on the `url` input comes from request data and must pass the workflow's destination policy
/// (`call_allowed_hosts`, no link-local or metadata addresses unless `call_allow_link_local`).
///
/// Fails on a network error, a status outside 200–299 (`non-2XX response code: 403`, with the status and headers in
/// the trace) and a JSON content type whose body is not JSON.
struct CallNode {
    let work: AsynchronousNodeWork

    init(settings: CallSettings, policy: CalloutDestinationPolicy?, client: CalloutClient) {
        let staticURL = settings.url
        work = { inputs, deadline async throws(WorkflowNodeError) -> NodeOutputs in
            try await Self.call(settings: settings, staticURL: staticURL, policy: policy, client: client, inputs: inputs, deadline: deadline)
        }
    }

    static func call(
        settings: CallSettings, staticURL: CalloutURL?, policy: CalloutDestinationPolicy?, client: CalloutClient, inputs: NodeInputs,
        deadline: ContinuousClock.Instant
    ) async throws(WorkflowNodeError) -> NodeOutputs {
        var url: CalloutURL
        do throws(CalloutError) {
            if case .string(let dynamic)? = inputs.ports["url"] {
                guard let policy else {
                    throw CalloutError(.refusedDestination, "a URL from the request needs call_allowed_hosts in the workflow")
                }
                url = try policy.check(dynamic)
            } else if let staticURL {
                url = staticURL
            } else {
                throw CalloutError(.invalidURL, "the call has no URL: set 'url' or connect the 'url' input")
            }
        } catch {
            throw WorkflowNodeError(error.description)
        }
        var headers: [(String, String)] = []
        if let map = inputs.ports["headers"]?.objectValue {
            switch HeaderMap.pairs(from: map) {
            case .success(let pairs): headers = pairs.map { ($0.name, $0.value) }
            case .failure(let error): throw error
            }
        }
        if let query = inputs.ports["query"]?.objectValue, query.count > 0 {
            let separator = url.pathAndQuery.contains("?") ? "&" : "?"
            do throws(CalloutError) {
                url = try CalloutURL(parsing: url.string + separator + FormEncoding.encode(query))
            } catch {
                throw WorkflowNodeError(error.description)
            }
        }
        var body: [UInt8]?
        if let value = inputs.ports["body"] {
            let form = headers.contains { $0.0.lowercased() == "content-type" && $0.1.lowercased().hasPrefix("application/x-www-form-urlencoded") }
            let encoded = BodyCodec.encode(value, formURLEncoded: form)
            body = encoded.bytes
            if let type = encoded.contentType, !headers.contains(where: { $0.0.lowercased() == "content-type" }) {
                headers.append(("Content-Type", type))
            }
        }
        var proxy: CalloutProxy?
        let proxyValues = ["http_proxy", "https_proxy", "proxy_auth_username", "proxy_auth_password"].map { inputs.ports[$0]?.stringValue }
        if proxyValues.contains(where: { $0 != nil }) {
            proxy = CalloutProxy(httpProxy: proxyValues[0], httpsProxy: proxyValues[1], username: proxyValues[2], password: proxyValues[3])
        }
        var timeout = deadline - .now
        if let milliseconds = settings.timeout, milliseconds > 0 { timeout = min(timeout, .milliseconds(milliseconds)) }
        guard timeout > .zero else { throw WorkflowNodeError("the workflow's deadline passed before the call started") }
        let request = CalloutRequest(method: settings.method, url: url.string, headers: headers, body: body, timeout: timeout,
                                     tlsVerify: settings.sslVerify, serverName: settings.sslServerName, proxy: proxy)
        let response: CalloutResponse
        do throws(CalloutError) {
            response = try await client.execute(request)
        } catch {
            throw WorkflowNodeError(error.description)
        }
        let headerPairs = response.headers.map { (name: $0.0, value: $0.1) }
        let contentType = response.headers.first { $0.0.lowercased() == "content-type" }?.1
        var ports: [String: JSONValue] = [
            "status": .integer(response.status), "headers": .object(HeaderMap.object(from: headerPairs)),
            "raw_body": .string(String(decoding: response.body, as: UTF8.self)),
        ]
        guard (200...299).contains(response.status) else {
            throw WorkflowNodeError("non-2XX response code: \(response.status)", partialOutputs: .fields(ports, order: ["headers", "status"]))
        }
        if BodyCodec.isJSON(contentType), !response.body.isEmpty {
            do {
                ports["body"] = try response.body.withUnsafeBytes { try JSONParser.parse($0) }
            } catch {
                throw WorkflowNodeError("invalid JSON in the response body: \(error)", partialOutputs: .fields(ports, order: ["headers", "status"]))
            }
        } else if !response.body.isEmpty {
            ports["body"] = .string(String(decoding: response.body, as: UTF8.self))
        }
        return .fields(ports, order: ["body", "headers", "status", "raw_body"])
    }
}
