import Kafka
import Yams

extension ConfigurationReader {
    /// A record header name: 1 to 255 bytes, no control characters.
    func readRecordHeaderName(_ node: Node, _ path: String) -> String? {
        guard let name = nonEmptyString(node, path) else { return nil }
        guard name.utf8.count <= 255, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            issue(node, path, "a record header name is 1 to 255 bytes without control characters")
            return nil
        }
        return name
    }

    /// `client_certificate_header` needs client certificates: `server.tls` with `client_certificate` optional or required.
    func checkClientCertificateHeaders(_ configuration: BridgeConfiguration, routes: [Node], defaults: Node?) {
        guard configuration.server.tls.map({ $0.clientCertificate == .none }) ?? true else { return }
        let places = (defaults.map { [("defaults", $0)] } ?? []) + routes.enumerated().map { ("routes[\($0.offset)]", $0.element) }
        for (path, node) in places {
            guard let header = node.mapping?["client_certificate_header"], header.null == nil else { continue }
            issue(header, "\(path).client_certificate_header",
                  "needs server.tls with client_certificate: optional or required (no client certificate is asked for)")
        }
    }
}

extension RouteConfiguration {
    /// The route's record headers from the request's HTTP headers (`headers`), then the client certificate's subject
    /// (`client_certificate_header`) when the client presented a verified one.
    func recordHeaders(for request: IngestRequest) -> [KafkaRecordHeader] {
        var records = recordHeaders.recordHeaders(for: request.headers)
        if let clientCertificateHeader, let identity = request.clientCertificate {
            records.append(KafkaRecordHeader(name: clientCertificateHeader, value: Array(identity.subject.utf8)))
        }
        if traceContextHeaders, let traceContext = TraceContextHeaders(request.headers), !records.contains(where: { $0.name == "traceparent" }) {
            records.append(KafkaRecordHeader(name: "traceparent", value: Array(traceContext.traceParent.utf8)))
            if let state = traceContext.traceState { records.append(KafkaRecordHeader(name: "tracestate", value: Array(state.utf8))) }
        }
        return records
    }
}
