import Foundation
import Testing

@testable import Bridge

/// `kbridge import-kong`: Kong declarative configurations (decK's format) translated to kbridge's YAML, which must
/// then load as kbridge's own configuration.
@Suite struct KongImportTests {
    /// Built from Kong's documented examples: kafka-upstream on a route (with an export's `null`s and its broker
    /// records), on a service (two routes inherit it, one with a Datakit workflow), a request-callout route, and what
    /// does not map (a regex path, hosts, a global rate-limiting plugin, consumers, a route without Kafka).
    static let deck = """
        _format_version: "3.0"
        services:
          - name: orders-service
            url: http://orders.internal:8080
            routes:
              - name: orders
                paths: [/orders, "~/legacy/orders/\\\\d+$"]
                methods: [POST]
                hosts: [api.example.com]
                plugins:
                  - name: kafka-upstream
                    config:
                      bootstrap_servers: [{host: kafka-1, port: 9092}, {host: kafka-2, port: 9092}]
                      topic: orders
                      forward_headers: true
                      forward_body: true
                      producer_async: true
                      producer_request_acks: -1
                      message_by_lua_functions: null
                      schema_registry: null
                      authentication:
                        strategy: sasl
                        mechanism: SCRAM-SHA-256
                        user: bob
                        password: hunter2
                        tokenauth: null
              - name: payments
                paths: [/payments]
                methods: [POST, PUT]
          - name: events-service
            url: http://events.internal
            plugins:
              - name: kafka-upstream
                config: {bootstrap_servers: [{host: kafka-1, port: 9092}], topic: events}
            routes:
              - name: events
                paths: [/events]
                methods: [POST]
              - name: enriched
                paths: [/enriched]
                methods: [POST]
                plugins:
                  - name: datakit
                    config:
                      nodes:
                        - {name: TAG, type: static, values: {source: kong-import}}
                        - {name: MERGE, type: jq, inputs: {body: request.body, tag: TAG}, jq: '.body + .tag', output: service_request.body}
          - name: web
            url: http://web.internal
            routes:
              - name: website
                paths: [/]
        routes:
          - name: profile
            service: {name: events-service}
            paths: [/profile]
            methods: [POST]
        plugins:
          - name: rate-limiting
            config: {minute: 100}
          - name: request-callout
            route: profile
            config:
              callouts:
                - name: user
                  request: {url: "http://users.internal/users/1", method: GET}
                  response: {body: {decode: true}}
              upstream:
                body:
                  custom: {user: "$(callouts.user.response.body)"}
        consumers:
          - username: alice
        """

    @Test func routesWithKafkaUpstreamBecomeKBridgeRoutesThatLoad() throws {
        let translation = try KongImport.translate(yaml: Self.deck)
        #expect(translation.routeCount == 4)
        let loaded = try BridgeConfiguration.parse(yaml: translation.yaml, file: "imported.yaml", environment: [:])
        let routes = loaded.configuration.routes
        #expect(routes.map(\.name) == ["orders", "events", "enriched", "profile"])
        let orders = try #require(routes.first)
        #expect(orders.topic == "orders")
        #expect(orders.methods == ["POST"])
        #expect(orders.kafka.bootstrapServers.map(\.description) == ["kafka-1:9092", "kafka-2:9092"])
        #expect(orders.kafka.librdkafkaProperties["sasl.mechanism"] == "SCRAM-SHA-256")
        // The service's plugin applies to both of its routes, with the route's own plugins beside it.
        #expect(routes[1].topic == "events" && routes[2].topic == "events")
        #expect(routes[2].workflow?.nodeCount == 2)
        // A top-level route of the service, with a request-callout attached by the route's name.
        #expect(routes[3].topic == "events" && routes[3].workflow?.kind == .requestCallout)
    }

    @Test func whatDoesNotMapIsListedWithItsReason() throws {
        let translation = try KongImport.translate(yaml: Self.deck)
        let unmapped = translation.unmapped
        func listed(_ text: String) -> Bool { unmapped.contains { $0.contains(text) } }
        #expect(listed("route orders: the regex path ~/legacy/orders"), "\(unmapped)")
        #expect(listed("route orders: hosts are not matched by kbridge"), "\(unmapped)")
        #expect(listed("Kong matches route paths as prefixes; kbridge matches them exactly: /orders, /events, /enriched, /profile"), "\(unmapped)")
        #expect(listed("route website: no kafka-upstream plugin applies to it"), "\(unmapped)")
        // A route-level kafka-upstream applies to that route only, not to its service's other routes.
        #expect(listed("route payments: no kafka-upstream plugin applies to it"), "\(unmapped)")
        #expect(listed("plugin rate-limiting: kbridge has no equivalent"), "\(unmapped)")
        #expect(listed("consumers: kbridge has no such entities"), "\(unmapped)")
        // The same list heads the YAML, as comments.
        #expect(translation.yaml.hasPrefix("# Written by `kbridge import-kong`"))
        #expect(translation.yaml.contains("#   - plugin rate-limiting: kbridge has no equivalent"))
    }

    @Test func precedenceIsRouteThenServiceThenGlobal() throws {
        let deck = """
            services:
              - name: s
                plugins: [{name: kafka-upstream, config: {bootstrap_servers: ["k:1"], topic: from-service}}]
                routes:
                  - {name: own, paths: [/own], methods: [POST], plugins: [{name: kafka-upstream, config: {bootstrap_servers: ["k:1"], topic: from-route}}]}
                  - {name: inherited, paths: [/inherited], methods: [POST]}
              - name: t
                routes:
                  - {name: global, paths: [/global], methods: [POST]}
                  - {name: disabled, paths: [/disabled], methods: [POST], plugins: [{name: kafka-upstream, enabled: false, config: {topic: x}}]}
            plugins:
              - {name: kafka-upstream, config: {bootstrap_servers: ["k:1"], topic: from-global}}
            """
        let translation = try KongImport.translate(yaml: deck)
        let routes = try BridgeConfiguration.parse(yaml: translation.yaml, file: "imported.yaml", environment: [:]).configuration.routes
        #expect(routes.map { "\($0.name)=\($0.topic ?? "")" } == ["own=from-route", "inherited=from-service", "global=from-global"])
        #expect(translation.unmapped.contains { $0.contains("route disabled: its kafka-upstream plugin is disabled") })
    }

    /// A decK dump lists every kafka-upstream field, unset ones as `null`: the translation loads with Kong's meaning.
    @Test func aPluginAsKongExportsItTranslatesAndLoads() throws {
        let config = KongExportTests.exportedConfig.split(separator: "\n", omittingEmptySubsequences: false)
            .map { "              " + $0 }.joined(separator: "\n")
        let deck = """
            _format_version: "3.0"
            services:
              - name: s
                routes:
                  - name: exported
                    paths: [/exported]
                    methods: [POST]
                    plugins:
                      - name: kafka-upstream
                        enabled: true
                        config:
            \(config)
            """
        let translation = try KongImport.translate(yaml: deck)
        #expect(translation.routeCount == 1)
        let loaded = try BridgeConfiguration.parse(yaml: translation.yaml, file: "imported.yaml", environment: [:])
        #expect(loaded.configuration.routes.first?.name == "exported")
    }

    @Test func unusableFilesAreRefusedWithTheReason() {
        #expect(throws: KongImport.Failure.self) { try KongImport.translate(yaml: "services: [") }
        #expect(throws: KongImport.Failure.self) { try KongImport.translate(yaml: "- just\n- a list\n") }
        #expect((try? KongImport.translate(yaml: "services: []"))?.routeCount == 0)
    }
}
