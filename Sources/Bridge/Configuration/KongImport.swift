import Foundation
import Yams

/// Translates a Kong declarative configuration (decK's format: `services` with their `routes`, top-level `routes`,
/// and `plugins` attached to routes, services or globally) into kbridge's YAML: every route whose effective
/// `kafka-upstream` plugin is enabled becomes a kbridge route (one per path) with the plugin's `config` as its keys,
/// and the route's `datakit` or `request-callout` plugin becomes its `workflow:` or `request_callout:`. What cannot be
/// mapped is listed with the reason, never dropped silently.
///
/// Plugin precedence is Kong's for the plugins read here: a route's own plugin, else its service's, else a global
/// one. The kafka-upstream config is copied as exported (kbridge reads Kong's `null`s as unset); in Datakit and
/// request-callout configurations, `null` values (unset fields) are left out.
public enum KongImport {
    public struct Translation: Sendable {
        /// kbridge's configuration, as YAML text (with the unmapped items as a comment at the top).
        public var yaml: String
        /// What was not mapped, each with where it is and why.
        public var unmapped: [String]
        /// The kbridge routes written.
        public var routeCount: Int
    }

    /// The Kong declarative file is not usable at all (not YAML, not a mapping).
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The plugins kbridge reads; every other plugin is listed as not mapped.
    static let mappedPlugins = ["kafka-upstream", "datakit", "request-callout"]
    /// Route fields that only select requests in ways kbridge does not (it matches the path and the method).
    static let unmappedRouteFields = ["hosts", "headers", "snis", "sources", "destinations", "expression"]
    /// Kong's methods when a route lists none (it accepts every method).
    static let allMethods = ["GET", "POST", "PUT", "PATCH", "DELETE"]

    public static func translate(yaml text: String) throws(Failure) -> Translation {
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else { throw Failure(description: "the file is empty") }
            root = composed
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(description: "not valid YAML or JSON: \(error)")
        }
        guard let top = root.mapping else { throw Failure(description: "expected a mapping with services, routes and plugins (decK's format)") }
        var translator = Translator()
        translator.read(top)
        return translator.finish()
    }

    /// One route as found in the file, with the service it belongs to.
    struct KongRoute {
        var node: Node.Mapping
        var label: String
        var serviceKeys: [String]
    }

    struct Translator {
        var unmapped: [String] = []
        var routes: [KongRoute] = []
        /// Plugins by the route or service they are attached to (name or id), and the global ones.
        var routePlugins: [String: [Node.Mapping]] = [:]
        var servicePlugins: [String: [Node.Mapping]] = [:]
        var globalPlugins: [Node.Mapping] = []
        var routeCount = 0

        mutating func read(_ top: Node.Mapping) {
            for (index, service) in (top["services"]?.sequence ?? []).enumerated() {
                guard let mapping = service.mapping else { continue }
                let keys = Self.identities(mapping)
                let label = "service \(keys.first ?? "#\(index + 1)")"
                for plugin in mapping["plugins"]?.sequence ?? [] {
                    guard let plugin = plugin.mapping else { continue }
                    for key in keys { servicePlugins[key, default: []].append(plugin) }
                    if keys.isEmpty { unmapped.append("\(label): a plugin on a service without a name or id is not read") }
                }
                for (routeIndex, route) in (mapping["routes"]?.sequence ?? []).enumerated() {
                    guard let route = route.mapping else { continue }
                    collect(route, label: Self.identities(route).first.map { "route \($0)" } ?? "\(label) route #\(routeIndex + 1)", serviceKeys: keys)
                }
            }
            for (index, route) in (top["routes"]?.sequence ?? []).enumerated() {
                guard let route = route.mapping else { continue }
                collect(route, label: Self.identities(route).first.map { "route \($0)" } ?? "route #\(index + 1)",
                        serviceKeys: Self.reference(route["service"]).map { [$0] } ?? [])
            }
            for plugin in top["plugins"]?.sequence ?? [] {
                guard let plugin = plugin.mapping else { continue }
                if let route = Self.reference(plugin["route"]) {
                    routePlugins[route, default: []].append(plugin)
                } else if let service = Self.reference(plugin["service"]) {
                    servicePlugins[service, default: []].append(plugin)
                } else if plugin["consumer"] != nil || plugin["consumer_group"] != nil {
                    unmapped.append("plugin \(Self.name(of: plugin) ?? "?") on a consumer: kbridge has no consumers")
                } else {
                    globalPlugins.append(plugin)
                }
            }
            for key in ["consumers", "consumer_groups", "upstreams", "certificates", "ca_certificates", "vaults", "snis"] where top[key] != nil {
                unmapped.append("\(key): kbridge has no such entities (secrets are {env: NAME}, {file: PATH} or {vault://env/NAME}; TLS files are paths)")
            }
        }

        mutating func collect(_ route: Node.Mapping, label: String, serviceKeys: [String]) {
            var route = route
            for plugin in route["plugins"]?.sequence ?? [] {
                guard let plugin = plugin.mapping else { continue }
                routePlugins["\u{0}\(label)", default: []].append(plugin)
            }
            route["plugins"] = nil
            routes.append(KongRoute(node: route, label: label, serviceKeys: serviceKeys))
        }

        /// The effective plugin `name` for a route: its own, else its service's, else a global one.
        func plugin(_ name: String, for route: KongRoute) -> Node.Mapping? {
            let own = (routePlugins["\u{0}\(route.label)"] ?? []) + Self.identities(route.node).flatMap { routePlugins[$0] ?? [] }
            if let found = own.first(where: { Self.name(of: $0) == name }) { return found }
            for key in route.serviceKeys {
                if let found = servicePlugins[key]?.first(where: { Self.name(of: $0) == name }) { return found }
            }
            return globalPlugins.first { Self.name(of: $0) == name }
        }

        mutating func finish() -> Translation {
            for route in routes { translate(route) }
            if !prefixPaths.isEmpty {
                unmapped.append("Kong matches route paths as prefixes; kbridge matches them exactly: \(prefixPaths.joined(separator: ", "))"
                                + " (a request to a longer path gets 404)")
            }
            var pluginNames = Set<String>()
            for plugin in Array(routePlugins.values.joined()) + Array(servicePlugins.values.joined()) + globalPlugins {
                if let name = Self.name(of: plugin), !KongImport.mappedPlugins.contains(name) { pluginNames.insert(name) }
            }
            for name in pluginNames.sorted() { unmapped.append("plugin \(name): kbridge has no equivalent (it is not applied)") }
            var yaml = "# Written by `kbridge import-kong` from a Kong declarative configuration.\n"
            if unmapped.isEmpty {
                yaml += "# Everything was mapped.\n"
            } else {
                yaml += "# Not mapped:\n" + unmapped.map { "#   - \($0)\n" }.joined()
            }
            let routesNode = Node.sequence(Node.Sequence(routeNodes))
            let body = (try? Yams.serialize(node: Node.mapping(Node.Mapping([(Node("routes"), routesNode)])), sortKeys: false)) ?? "routes: []\n"
            yaml += body
            return Translation(yaml: yaml, unmapped: unmapped, routeCount: routeCount)
        }

        var routeNodes: [Node] = []
        /// Paths Kong would match as prefixes.
        var prefixPaths: [String] = []

        mutating func translate(_ route: KongRoute) {
            guard let kafka = plugin("kafka-upstream", for: route) else {
                unmapped.append("\(route.label): no kafka-upstream plugin applies to it (kbridge only produces to Kafka)")
                return
            }
            if kafka["enabled"]?.bool == false {
                unmapped.append("\(route.label): its kafka-upstream plugin is disabled")
                return
            }
            for field in KongImport.unmappedRouteFields where Self.hasValue(route.node[field]) {
                unmapped.append("\(route.label): \(field) are not matched by kbridge (it matches the path and the method)")
            }
            var methods = route.node["methods"]?.sequence?.compactMap(\.string) ?? []
            if methods.isEmpty {
                methods = KongImport.allMethods
                unmapped.append("\(route.label): lists no methods (Kong accepts any); kbridge's route takes \(methods.joined(separator: ", "))")
            }
            var paths = route.node["paths"]?.sequence?.compactMap(\.string) ?? []
            if paths.isEmpty {
                paths = ["/"]
                unmapped.append("\(route.label): has no paths (Kong matches every path); kbridge's route is '/' only")
            }
            var workflow: Node?
            var requestCallout: Node?
            if let datakit = plugin("datakit", for: route), datakit["enabled"]?.bool != false, let config = datakit["config"] {
                workflow = Self.withoutNulls(config)
            }
            if let callout = plugin("request-callout", for: route), callout["enabled"]?.bool != false, let config = callout["config"] {
                if workflow != nil {
                    unmapped.append("\(route.label): has both datakit and request-callout; kbridge runs one per route: the datakit workflow is kept "
                                    + "(write the callouts as call nodes)")
                } else {
                    requestCallout = Self.withoutNulls(config)
                }
            }
            let baseName = Self.identities(route.node).first ?? route.label.replacingOccurrences(of: " ", with: "-")
            // As exported: kbridge reads Kong's `null`s in kafka-upstream's keys with Kong's meaning (unset).
            let kafkaConfig = kafka["config"]?.mapping ?? Node.Mapping([])
            for path in paths where path.hasPrefix("~") {
                unmapped.append("\(route.label): the regex path \(path) has no kbridge equivalent (paths are literal, with {topic} and {key})")
            }
            paths.removeAll { $0.hasPrefix("~") }
            for (index, path) in paths.enumerated() {
                if path.count > 1 { prefixPaths.append(path) }
                var entries: [(Node, Node)] = [
                    (Node("name"), Node(paths.count > 1 ? "\(baseName)-\(index + 1)" : baseName)),
                    (Node("path"), Node(path)),
                    (Node("methods"), Node.sequence(Node.Sequence(methods.map { Node($0) }, Tag(.seq), .flow))),
                ]
                for (key, value) in kafkaConfig {
                    if key.string == "bootstrap_servers", let servers = Self.brokerList(value) {
                        entries.append((key, servers))
                    } else {
                        entries.append((key, value))
                    }
                }
                if let workflow { entries.append((Node("workflow"), workflow)) }
                if let requestCallout { entries.append((Node("request_callout"), requestCallout)) }
                routeNodes.append(Node.mapping(Node.Mapping(entries)))
                routeCount += 1
            }
        }

        /// Kong's `[{host, port}]` as kbridge's shorter `[host:port]`.
        static func brokerList(_ node: Node) -> Node? {
            guard let records = node.sequence else { return nil }
            var addresses: [Node] = []
            for record in records {
                guard let host = record.mapping?["host"]?.string, let port = record.mapping?["port"]?.int else { return nil }
                addresses.append(Node("\(host):\(port)"))
            }
            return Node.sequence(Node.Sequence(addresses, Tag(.seq), .flow))
        }

        /// The node without the keys whose value is `null` (decK exports unset fields as `null`), recursively.
        static func withoutNulls(_ node: Node) -> Node? {
            switch node {
            case .scalar: return node.null != nil ? nil : node
            case .mapping(let mapping):
                var entries: [(Node, Node)] = []
                for (key, value) in mapping {
                    if let kept = withoutNulls(value) { entries.append((key, kept)) }
                }
                // A record whose fields are all unset is unset (`authentication: {mechanism: null, ...}`).
                return entries.isEmpty ? nil : Node.mapping(Node.Mapping(entries, mapping.tag, mapping.style))
            case .sequence(let sequence):
                return Node.sequence(Node.Sequence(sequence.compactMap { withoutNulls($0) }, sequence.tag, sequence.style))
            case .alias: return nil
            }
        }

        static func hasValue(_ node: Node?) -> Bool {
            guard let node else { return false }
            if node.null != nil { return false }
            if let sequence = node.sequence { return !sequence.isEmpty }
            if let mapping = node.mapping { return !mapping.isEmpty }
            return true
        }

        static func name(of plugin: Node.Mapping) -> String? { plugin["name"]?.string }

        /// A route's or service's `name` and `id`, the ways plugins and routes refer to it.
        static func identities(_ entity: Node.Mapping) -> [String] {
            ["name", "id"].compactMap { entity[$0]?.string }.filter { !$0.isEmpty }
        }

        /// A reference to a route or service: a name or id, or `{name: ...}` / `{id: ...}`.
        static func reference(_ node: Node?) -> String? {
            guard let node, node.null == nil else { return nil }
            if let text = node.string { return text }
            if let mapping = node.mapping { return identities(mapping).first }
            return nil
        }
    }
}
