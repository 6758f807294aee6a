import Callout
import Foundation
import JSON
import Secrets

/// Kong's request-callout plugin (`config` as a route's `request_callout:`), compiled onto the workflow engine rather
/// than run by an executor of its own: each callout becomes a node that depends on the callouts it lists in
/// `depends_on` and on those its templates read (`$(callouts.auth.response.body.token)`), so callouts that do not
/// depend on each other run concurrently; an `upstream` node applies the `upstream` customizations to the request the
/// message is built from (`service_request`). Caching, the error policy (`fail`, `retry`, `continue`) and the
/// request/response storage follow Kong 3.15's schema; Lua (`by_lua`, Lua in `$(...)`) is refused at start-up.
public enum RequestCallout {
    /// The top-level keys of Kong's request-callout `config`.
    /// The top-level keys of Kong's request-callout `config`, and kbridge's own: `call_allowed_hosts` and
    /// `call_allow_link_local` (where callout URLs built from templates may go) and `ca_certificates`.
    public static let topLevelKeys = ["callouts", "cache", "upstream", "call_allowed_hosts", "call_allow_link_local", "ca_certificates"]
    /// The name of the node that applies `upstream` (a callout may not use it).
    static let upstreamNodeName = "upstream"
    /// The most callouts a configuration may have (the workflow engine's bound on nodes, less the upstream node).
    public static let maximumCallouts = WorkflowDefinition.maximumNodes - 1

    /// Reads a request-callout configuration and compiles it into a workflow definition.
    ///
    /// - Parameter vault: secrets resolved by the caller from `{vault://...}` references in the configuration; their
    ///   values are masked in errors and traces.
    /// - Throws: ``WorkflowConfigurationError`` with every problem and its key path (`callouts[1].request.url`).
    public static func definition(from value: JSONValue, vault: [(name: String, secret: Secret)] = []) throws(WorkflowConfigurationError)
        -> WorkflowDefinition
    {
        var reader = RequestCalloutReader()
        var definition = reader.read(value)
        definition.vault = vault
        guard reader.base.issues.isEmpty else { throw WorkflowConfigurationError(issues: reader.base.issues) }
        do {
            _ = try GraphBuilder.build(definition)
        } catch {
            // A cycle is named by nodes: say it in the words of this configuration.
            throw WorkflowConfigurationError(issues: error.issues.map { issue in
                var issue = issue
                if issue.reason.contains("circular dependency") {
                    issue = .init(path: "callouts", reason: issue.reason.replacingOccurrences(of: "node #", with: "callout #"))
                }
                return issue
            })
        }
        return definition
    }
}

/// A value of a `custom` map: a template, a value other than a string (body fields keep their JSON type), or `null`,
/// which removes the field.
enum CustomValue: Sendable {
    case template(CalloutTemplate)
    case literal(JSONValue)
    case remove
}

/// `headers`, `query` or `body` customizations: whether the client's own are forwarded, and the fields set.
struct CustomFields: Sendable {
    var forward: Bool
    var custom: [(name: String, value: CustomValue)] = []
    /// `body.decode`: the client's body is read as JSON so that custom fields can be added to it.
    var decode = false

    var templates: [CalloutTemplate] {
        custom.compactMap { if case .template(let template) = $0.value { template } else { nil } }
    }
}

/// One callout (`callouts[]`).
public struct RequestCalloutSettings: Sendable {
    enum OnError: String, Sendable { case fail, retry, `continue` }

    var name: String
    var method = "GET"
    var url: CalloutTemplate
    var headers = CustomFields(forward: false)
    var query = CustomFields(forward: false)
    var body = CustomFields(forward: false)
    var sslVerify = true
    var serverName: String?
    var proxy: CalloutProxy?
    /// `http_opts.timeouts` (connect + write + read, ms): the whole request's bound; `nil` = until the deadline.
    var timeout: Duration?
    var onError = OnError.fail
    /// `error.http_statuses`: statuses handled as errors (network errors always are).
    var errorStatuses: Set<Int> = []
    var retries = 2
    var errorResponseCode = 400
    var errorResponseMessage = CalloutTemplate(text: "service callout error")
    var storeResponseHeaders = true
    var storeResponseBody = true
    var decodeResponseBody = false
    /// Seconds the response is cached for (`cache.cache_ttl`); `nil`: not cached (strategy `off` or `cache.bypass`).
    var cacheTTL: Int?

    /// Every template of the callout, for its dependencies.
    var templates: [CalloutTemplate] { [url, errorResponseMessage] + headers.templates + query.templates + body.templates }
}

/// `upstream`: what becomes of the client's request (the message) after the callouts.
public struct UpstreamSettings: Sendable {
    var headers = CustomFields(forward: true)
    var query = CustomFields(forward: true)
    var body = CustomFields(forward: true, decode: true)

    var templates: [CalloutTemplate] { headers.templates + query.templates + body.templates }
    var changesNothing: Bool { headers.forward && query.forward && body.forward && headers.custom.isEmpty && query.custom.isEmpty && body.custom.isEmpty }
}

/// Reads the configuration tree with the workflow reader's typed helpers and key paths.
struct RequestCalloutReader {
    var base = DefinitionReader()

    mutating func read(_ value: JSONValue) -> WorkflowDefinition {
        var definition = WorkflowDefinition()
        guard let object = base.mapping(value, "", allowed: RequestCallout.topLevelKeys) else { return definition }
        var cacheTTL: Int?
        if let cache = object["cache"] { cacheTTL = readCache(cache, callouts: object["callouts"], into: &definition) }
        if let hosts = object["call_allowed_hosts"] { definition.callAllowedHosts = base.stringList(hosts, "call_allowed_hosts") ?? [] }
        let allowLinkLocal = object["call_allow_link_local"].flatMap { base.bool($0, "call_allow_link_local") } ?? false
        if !definition.callAllowedHosts.isEmpty {
            do throws(CalloutError) {
                definition.callDestinations = try CalloutDestinationPolicy(allowedHosts: definition.callAllowedHosts, allowLinkLocal: allowLinkLocal)
            } catch {
                base.issue("call_allowed_hosts", error.description)
            }
        }
        hasDestinationPolicy = definition.callDestinations != nil
        if let files = object["ca_certificates"] { definition.caCertificateFiles = base.stringList(files, "ca_certificates") ?? [] }
        guard let calloutsValue = object["callouts"] else {
            base.issue("callouts", "required key missing: at least one callout")
            return definition
        }
        guard let callouts = calloutsValue.arrayValue, !callouts.isEmpty else {
            base.issue("callouts", "expected a non-empty list of callouts")
            return definition
        }
        guard callouts.count <= RequestCallout.maximumCallouts else {
            base.issue("callouts", "at most \(RequestCallout.maximumCallouts) callouts, found \(callouts.count)")
            return definition
        }
        var settings: [(RequestCalloutSettings, dependsOn: [String], path: String)] = []
        for (position, callout) in callouts.enumerated() {
            if let read = readCallout(callout, "callouts[\(position)]", cacheTTL: cacheTTL) { settings.append((read.0, read.1, "callouts[\(position)]")) }
        }
        let names = settings.map(\.0.name)
        var seen = Set<String>()
        for (callout, _, path) in settings where !seen.insert(callout.name).inserted {
            base.issue("\(path).name", "callout names must be unique: '\(callout.name)' is used twice")
        }
        var upstream = UpstreamSettings()
        if let value = object["upstream"] { upstream = readUpstream(value) }
        guard base.issues.isEmpty else { return definition }

        for (index, (callout, dependsOn, path)) in settings.enumerated() {
            var dependencies: [String] = []
            for (offset, name) in dependsOn.enumerated() {
                guard names.contains(name) else {
                    base.issue("\(path).depends_on[\(offset)]", "unknown callout '\(name)'" + Suggestion.didYouMean(name, among: names))
                    continue
                }
                if name == callout.name { base.issue("\(path).depends_on[\(offset)]", "a callout cannot depend on itself") }
                if !dependencies.contains(name) { dependencies.append(name) }
            }
            // A template that reads an earlier callout waits for it (Kong leaves that to `depends_on`).
            for template in callout.templates {
                for name in template.referencedCallouts.sorted() where !dependencies.contains(name) && name != callout.name {
                    guard names.contains(name) else {
                        base.issue(path, "a template reads callouts.\(name), which is not a callout" + Suggestion.didYouMean(name, among: names))
                        continue
                    }
                    dependencies.append(name)
                }
                if template.referencedCallouts.contains(callout.name) {
                    base.issue(path, "a template of callout '\(callout.name)' reads its own result")
                }
            }
            definition.nodes.append(NodeDefinition(
                name: callout.name, index: index + 1,
                inputs: [(port: "request", label: "request")] + dependencies.map { (port: $0, label: $0) },
                settings: .callout(callout)))
        }
        for template in upstream.templates {
            for name in template.referencedCallouts where !names.contains(name) {
                base.issue("upstream", "a template reads callouts.\(name), which is not a callout" + Suggestion.didYouMean(name, among: names))
            }
        }
        if !upstream.changesNothing {
            definition.nodes.append(NodeDefinition(
                name: RequestCallout.upstreamNodeName, index: settings.count + 1,
                inputs: [(port: "request", label: "request")] + names.map { (port: $0, label: $0) },
                output: ImplicitNode.serviceRequest.rawValue, settings: .upstream(upstream)))
        }
        return definition
    }

    /// `cache`: the strategy and `cache_ttl`; returns the TTL of cached callouts (`nil`: strategy `off`).
    /// `callouts` as written: the default Redis key prefix is derived from it (as a workflow's from its nodes).
    private mutating func readCache(_ value: JSONValue, callouts: JSONValue?, into definition: inout WorkflowDefinition) -> Int? {
        guard let cache = base.mapping(value, "cache", allowed: ["strategy", "cache_ttl", "memory", "redis"]) else { return nil }
        let ttl = cache["cache_ttl"].flatMap { base.int($0, "cache.cache_ttl", in: 1...31_536_000) } ?? 300
        let strategy = cache["strategy"].flatMap { base.string($0, "cache.strategy") } ?? "off"
        switch strategy {
        case "off": return nil
        case "memory", "redis":
            var resource = JSONObject()
            resource["strategy"] = .string(strategy)
            if let memory = cache["memory"] { resource["memory"] = memory }
            if let redis = cache["redis"] { resource["redis"] = redis }
            // The same reader as a workflow's `resources.cache`, with this configuration's key paths.
            var cacheReader = DefinitionReader()
            definition.cacheResource = cacheReader.readCacheResource(.object(resource), nodes: callouts)
            base.issues += cacheReader.issues.map { .init(path: $0.path.replacingOccurrences(of: "resources.cache", with: "cache"), reason: $0.reason) }
            return ttl
        default:
            base.issue("cache.strategy", "unknown strategy '\(strategy)' (off, memory or redis)")
            return nil
        }
    }

    static let calloutKeys = ["name", "request", "response", "depends_on", "cache"]
    static let requestKeys = ["url", "method", "headers", "query", "body", "http_opts", "error", "by_lua"]

    /// Whether `call_allowed_hosts` was given (read before the callouts).
    var hasDestinationPolicy = false

    private mutating func readCallout(_ value: JSONValue, _ path: String, cacheTTL: Int?) -> (RequestCalloutSettings, [String])? {
        guard let object = base.mapping(value, path, allowed: Self.calloutKeys) else { return nil }
        let before = base.issues.count
        guard let nameValue = object["name"], let name = base.string(nameValue, "\(path).name") else {
            if object["name"] == nil { base.issue("\(path).name", "required key missing") }
            return nil
        }
        if name.isEmpty || name.utf8.count > 255 || !name.utf8.allSatisfy(DefinitionReader.isNameByte) {
            base.issue("\(path).name", "'\(name)' is not a valid callout name: 1 to 255 letters, digits, '_' or '-'")
        }
        if ImplicitNode(rawValue: name) != nil || name == RequestCallout.upstreamNodeName {
            base.issue("\(path).name", "'\(name)' is a reserved name")
        }
        guard let requestValue = object["request"], let request = base.mapping(requestValue, "\(path).request", allowed: Self.requestKeys) else {
            if object["request"] == nil { base.issue("\(path).request", "required key missing: the callout's request (at least its url)") }
            return nil
        }
        if request["by_lua"] != nil { base.issue("\(path).request.by_lua", "Lua code is not run by kbridge; remove by_lua") }
        guard let urlValue = request["url"], let urlText = base.string(urlValue, "\(path).request.url") else {
            if request["url"] == nil { base.issue("\(path).request.url", "required key missing") }
            return nil
        }
        guard let url = template(urlText, "\(path).request.url") else { return nil }
        if url.isConstant {
            do throws(CalloutError) { _ = try CalloutURL(parsing: urlText) } catch { base.issue("\(path).request.url", error.description) }
        } else if !hasDestinationPolicy {
            base.issue("\(path).request.url", "a URL built from $(...) templates can reach any address: list where it may go in "
                       + "call_allowed_hosts (hosts or *.domains), next to callouts")
        }
        var settings = RequestCalloutSettings(name: name, url: url)
        if let value = request["method"], let method = base.string(value, "\(path).request.method") {
            if method.isEmpty || method.utf8.count > 32 || !method.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
                base.issue("\(path).request.method", "'\(method)' is not a method: 1 to 32 upper-case letters, such as GET or POST")
            }
            settings.method = method
        }
        if let value = request["headers"] { settings.headers = customFields(value, "\(path).request.headers", forward: false, strings: true) }
        if let value = request["query"] { settings.query = customFields(value, "\(path).request.query", forward: false, strings: true) }
        if let value = request["body"] { settings.body = customFields(value, "\(path).request.body", forward: false, strings: false, decode: false) }
        if let value = request["http_opts"] { readHTTPOptions(value, "\(path).request.http_opts", into: &settings) }
        if let value = request["error"] { readErrorPolicy(value, "\(path).request.error", into: &settings) }
        if let value = object["response"] { readResponse(value, "\(path).response", into: &settings) }
        var bypass = false
        if let value = object["cache"], let cache = base.mapping(value, "\(path).cache", allowed: ["bypass"]) {
            bypass = cache["bypass"].flatMap { base.bool($0, "\(path).cache.bypass") } ?? false
        }
        settings.cacheTTL = bypass ? nil : cacheTTL
        let dependsOn = object["depends_on"].flatMap { base.stringList($0, "\(path).depends_on") } ?? []
        guard base.issues.count == before else { return nil }
        return (settings, dependsOn)
    }

    private mutating func template(_ text: String, _ path: String) -> CalloutTemplate? {
        do throws(CalloutTemplateError) {
            return try CalloutTemplate(parsing: text)
        } catch {
            base.issue(path, error.description)
            return nil
        }
    }

    /// `{forward, custom}` (and `decode` for bodies). Header and query values are text; body values keep their type.
    private mutating func customFields(_ value: JSONValue, _ path: String, forward: Bool, strings: Bool, decode: Bool = false) -> CustomFields {
        var fields = CustomFields(forward: forward, decode: decode)
        guard let object = base.mapping(value, path, allowed: strings ? ["forward", "custom"] : ["forward", "custom", "decode"]) else { return fields }
        if let flag = object["forward"] { fields.forward = base.bool(flag, "\(path).forward") ?? forward }
        if let flag = object["decode"] { fields.decode = base.bool(flag, "\(path).decode") ?? decode }
        guard let customValue = object["custom"] else { return fields }
        guard let custom = customValue.objectValue else {
            base.issue("\(path).custom", "expected a mapping of names to values")
            return fields
        }
        guard custom.count <= 256 else {
            base.issue("\(path).custom", "at most 256 fields, found \(custom.count)")
            return fields
        }
        for (name, member) in custom {
            let memberPath = "\(path).custom.\(name)"
            switch member {
            case .null: fields.custom.append((name, .remove))
            case .string(let text):
                if let parsed = template(text, memberPath) { fields.custom.append((name, .template(parsed))) }
            case .number(let number) where strings: fields.custom.append((name, .template(CalloutTemplate(text: number.text))))
            case .bool(let flag) where strings: fields.custom.append((name, .template(CalloutTemplate(text: flag ? "true" : "false"))))
            case _ where strings: base.issue(memberPath, "expected a string, found \(member.datakitTypeName)")
            default: fields.custom.append((name, .literal(member)))
            }
        }
        return fields
    }

    private mutating func readHTTPOptions(_ value: JSONValue, _ path: String, into settings: inout RequestCalloutSettings) {
        guard let options = base.mapping(value, path, allowed: ["ssl_verify", "ssl_server_name", "proxy", "timeouts"]) else { return }
        if let flag = options["ssl_verify"] { settings.sslVerify = base.bool(flag, "\(path).ssl_verify") ?? true }
        if let name = options["ssl_server_name"] { settings.serverName = base.string(name, "\(path).ssl_server_name") }
        if let proxyValue = options["proxy"],
           let proxy = base.mapping(proxyValue, "\(path).proxy", allowed: ["http_proxy", "https_proxy", "auth_username", "auth_password"]) {
            func text(_ key: String) -> String? { proxy[key].flatMap { base.string($0, "\(path).proxy.\(key)") } }
            settings.proxy = CalloutProxy(httpProxy: text("http_proxy"), httpsProxy: text("https_proxy"), username: text("auth_username"),
                                          password: text("auth_password"))
        }
        if let timeoutsValue = options["timeouts"], let timeouts = base.mapping(timeoutsValue, "\(path).timeouts", allowed: ["connect", "read", "write"]) {
            let values = ["connect", "write", "read"].compactMap { key in timeouts[key].flatMap { base.int($0, "\(path).timeouts.\(key)", in: 0...2_147_483_646) } }
            if timeouts.count != 3 {
                base.issue("\(path).timeouts", "all or none of connect, write and read must be set")
            } else if values.count == 3 {
                settings.timeout = .milliseconds(values.reduce(0, +))
            }
        }
    }

    private mutating func readErrorPolicy(_ value: JSONValue, _ path: String, into settings: inout RequestCalloutSettings) {
        let keys = ["on_error", "http_statuses", "retries", "error_response_code", "error_response_msg"]
        guard let policy = base.mapping(value, path, allowed: keys) else { return }
        if let text = policy["on_error"].flatMap({ base.string($0, "\(path).on_error") }) {
            if let onError = RequestCalloutSettings.OnError(rawValue: text) {
                settings.onError = onError
            } else {
                base.issue("\(path).on_error", "expected fail, retry or continue, found '\(text)'")
            }
        }
        if let list = policy["http_statuses"] {
            guard let statuses = list.arrayValue, statuses.count <= 900 else {
                base.issue("\(path).http_statuses", "expected a list of status codes")
                return
            }
            for (offset, status) in statuses.enumerated() {
                if let code = base.int(status, "\(path).http_statuses[\(offset)]", in: 100...999) { settings.errorStatuses.insert(code) }
            }
        }
        if let value = policy["retries"], let retries = base.int(value, "\(path).retries", in: 0...10) { settings.retries = retries }
        if let value = policy["error_response_code"], let code = base.int(value, "\(path).error_response_code", in: 100...599) {
            settings.errorResponseCode = code
        }
        if let value = policy["error_response_msg"], let text = base.string(value, "\(path).error_response_msg"),
           let message = template(text, "\(path).error_response_msg") {
            settings.errorResponseMessage = message
        }
    }

    private mutating func readResponse(_ value: JSONValue, _ path: String, into settings: inout RequestCalloutSettings) {
        guard let response = base.mapping(value, path, allowed: ["headers", "body", "by_lua"]) else { return }
        if response["by_lua"] != nil { base.issue("\(path).by_lua", "Lua code is not run by kbridge; remove by_lua") }
        if let headersValue = response["headers"], let headers = base.mapping(headersValue, "\(path).headers", allowed: ["store"]) {
            settings.storeResponseHeaders = headers["store"].flatMap { base.bool($0, "\(path).headers.store") } ?? true
        }
        if let bodyValue = response["body"], let body = base.mapping(bodyValue, "\(path).body", allowed: ["store", "decode"]) {
            settings.storeResponseBody = body["store"].flatMap { base.bool($0, "\(path).body.store") } ?? true
            settings.decodeResponseBody = body["decode"].flatMap { base.bool($0, "\(path).body.decode") } ?? false
        }
    }

    private mutating func readUpstream(_ value: JSONValue) -> UpstreamSettings {
        var upstream = UpstreamSettings()
        guard let object = base.mapping(value, "upstream", allowed: ["headers", "query", "body", "by_lua"]) else { return upstream }
        if object["by_lua"] != nil { base.issue("upstream.by_lua", "Lua code is not run by kbridge; remove by_lua") }
        if let value = object["headers"] { upstream.headers = customFields(value, "upstream.headers", forward: true, strings: true) }
        if let value = object["query"] { upstream.query = customFields(value, "upstream.query", forward: true, strings: true) }
        if let value = object["body"] { upstream.body = customFields(value, "upstream.body", forward: true, strings: false, decode: true) }
        return upstream
    }
}
