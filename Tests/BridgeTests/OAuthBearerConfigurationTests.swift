import Foundation
import Testing

@testable import Bridge

/// `authentication.mechanism: OAUTHBEARER` with `authentication.oauthbearer` (Kong 3.15): read, checked, mapped.
@Suite struct OAuthBearerConfigurationTests {
    func route(_ authentication: String, environment: [String: String] = [:]) throws -> RouteConfiguration {
        let loaded = try BridgeConfiguration.parse(
            yaml: "routes:\n  - path: /a\n    topic: t\n    bootstrap_servers: [k:1]\n    authentication:\n" + authentication,
            file: "/tmp/kbridge.yaml", environment: environment)
        return try #require(loaded.configuration.routes.first)
    }

    func problems(_ authentication: String, environment: [String: String] = [:]) -> [String] {
        do {
            _ = try route(authentication, environment: environment)
            return []
        } catch let error as ConfigurationError {
            return error.issues.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    static let complete = """
              strategy: sasl
              mechanism: OAUTHBEARER
              oauthbearer:
                token_endpoint_url: {env: IDP_URL}
                client_id: kbridge
                client_secret: {env: IDP_SECRET}
                scopes: [kafka.write, kafka.read]
                extensions: {logicalCluster: lkc-abc12, identityPoolId: pool-Xy9}
                token_endpoint_tls_verify: false

        """

    @Test func kongsOAuthBearerKeysAreRead() throws {
        let route = try route(Self.complete, environment: ["IDP_URL": "https://idp.example/oauth2/token", "IDP_SECRET": "s3cr3t-v4lue"])
        let authentication = try #require(route.kafka.authentication)
        #expect(authentication.mechanism == .oauthBearer)
        let oauth = try #require(authentication.oauthBearer)
        #expect(oauth.tokenEndpoint == "https://idp.example/oauth2/token")
        #expect(oauth.clientID.value == "kbridge")
        #expect(oauth.clientSecret.value == "s3cr3t-v4lue")
        #expect(oauth.clientSecret.description == "<secret from env IDP_SECRET>")
        #expect(oauth.scopes == ["kafka.write", "kafka.read"])
        #expect(oauth.extensions == ["logicalCluster": "lkc-abc12", "identityPoolId": "pool-Xy9"])
        #expect(oauth.tokenEndpointTLSVerify == false)
        let properties = route.kafka.librdkafkaProperties
        #expect(properties["security.protocol"] == "SASL_PLAINTEXT")
        #expect(properties["sasl.mechanism"] == "OAUTHBEARER")
        #expect(properties["sasl.username"] == nil && properties["sasl.password"] == nil)
        #expect(!properties.values.contains("s3cr3t-v4lue"))
        #expect(!"\(route)".contains("s3cr3t-v4lue"))
        #expect(route.kafka.securityDescription == "SASL_PLAINTEXT OAUTHBEARER")
    }

    @Test func theDefaultsVerifyTLSAndSendNoScopesOrExtensions() throws {
        let route = try route("""
                  mechanism: OAUTHBEARER
                  oauthbearer: {token_endpoint_url: "http://127.0.0.1:1/token", client_id: a, client_secret: b}

            """)
        let oauth = try #require(route.kafka.authentication?.oauthBearer)
        #expect(oauth.tokenEndpointTLSVerify)
        #expect(oauth.scopes.isEmpty && oauth.extensions.isEmpty)
    }

    @Test func routesShareAProducerOnlyWithTheSameOAuthSettings() throws {
        let base = try route("""
                  mechanism: OAUTHBEARER
                  oauthbearer: {token_endpoint_url: "https://idp/token", client_id: a, client_secret: b, extensions: {logicalCluster: one}}

            """).kafka
        let sameAgain = try route("""
                  mechanism: OAUTHBEARER
                  oauthbearer: {token_endpoint_url: "https://idp/token", client_id: a, client_secret: b, extensions: {logicalCluster: one}}

            """).kafka
        let otherCluster = try route("""
                  mechanism: OAUTHBEARER
                  oauthbearer: {token_endpoint_url: "https://idp/token", client_id: a, client_secret: b, extensions: {logicalCluster: two}}

            """).kafka
        let otherClient = try route("""
                  mechanism: OAUTHBEARER
                  oauthbearer: {token_endpoint_url: "https://idp/token", client_id: c, client_secret: b, extensions: {logicalCluster: one}}

            """).kafka
        #expect(base == sameAgain)
        #expect(base != otherCluster)
        #expect(base != otherClient)
        // The librdkafka properties alone are equal: the identity has to come from the OAuth settings.
        #expect(base.librdkafkaProperties == otherCluster.librdkafkaProperties)
    }

    @Test(arguments: [
        ("      mechanism: OAUTHBEARER\n", "authentication.oauthbearer: required with mechanism OAUTHBEARER"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: null\n", "authentication.oauthbearer: required with mechanism OAUTHBEARER"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {client_id: a, client_secret: b}\n",
         "authentication.oauthbearer.token_endpoint_url: required key missing"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_secret: b}\n",
         "authentication.oauthbearer.client_id: required key missing"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a}\n",
         "authentication.oauthbearer.client_secret: required key missing"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'ftp://i/t', client_id: a, client_secret: b}\n",
         "authentication.oauthbearer.token_endpoint_url: expected an http:// or https:// URL"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://', client_id: a, client_secret: b}\n",
         "authentication.oauthbearer.token_endpoint_url: expected an http:// or https:// URL"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: b, audience: x}\n",
         "authentication.oauthbearer.audience: unknown key"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: {env: NOPE}}\n",
         "authentication.oauthbearer.client_secret.env: environment variable NOPE is not set"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: b, scopes: read}\n",
         "authentication.oauthbearer.scopes: expected a list"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: b, scopes: ['a b']}\n",
         "authentication.oauthbearer.scopes: 'a b' is not a scope"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: b, extensions: [a]}\n",
         "authentication.oauthbearer.extensions: expected a mapping"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: b, extensions: {logical_cluster: x}}\n",
         "authentication.oauthbearer.extensions.logical_cluster: an extension name is letters only"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: b, extensions: {auth: x}}\n",
         "authentication.oauthbearer.extensions.auth: 'auth' is reserved"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: b, extensions: {logicalCluster: \"a\\u0001b\"}}\n",
         "authentication.oauthbearer.extensions.logicalCluster: expected at most 1024 visible ASCII characters"),
        ("      mechanism: OAUTHBEARER\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: b, token_endpoint_tls_verify: maybe}\n",
         "authentication.oauthbearer.token_endpoint_tls_verify: expected true or false"),
        ("      mechanism: OAUTHBEARER\n      user: u\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: b}\n",
         "authentication.user: not used with OAUTHBEARER"),
        ("      mechanism: PLAIN\n      user: u\n      password: p\n      oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: b}\n",
         "authentication.oauthbearer: only used with mechanism OAUTHBEARER"),
    ])
    func invalidOAuthBearerSettingsAreRefused(authentication: String, expected: String) {
        let found = problems(authentication)
        #expect(found.contains { $0.contains(expected) }, "\(found)")
        // Errors point at the file, line and column.
        #expect(found.allSatisfy { $0.hasPrefix("/tmp/kbridge.yaml:") }, "\(found)")
    }

    @Test func aSecretEndpointURLIsNotQuotedInItsError() {
        let found = problems("""
                  mechanism: OAUTHBEARER
                  oauthbearer: {token_endpoint_url: {env: IDP_URL}, client_id: a, client_secret: b}

            """, environment: ["IDP_URL": "ldap://hidden-host"])
        #expect(found.contains { $0.contains("token_endpoint_url: expected an http:// or https:// URL") }, "\(found)")
        #expect(!found.joined().contains("hidden-host"))
    }

    @Test func anExtensionValueTooLongIsRefused() {
        let long = String(repeating: "x", count: 1025)
        let found = problems("""
                  mechanism: OAUTHBEARER
                  oauthbearer: {token_endpoint_url: 'https://i/t', client_id: a, client_secret: b, extensions: {identityPoolId: \(long)}}

            """)
        #expect(found.contains { $0.contains("extensions.identityPoolId: expected at most 1024") }, "\(found)")
    }

    @Test func kongsUnsetOAuthBearerRecordStillMeansNoSASL() throws {
        let route = try route("""
                  mechanism: null
                  oauthbearer: {client_id: null, client_secret: null, extensions: null, scopes: null, token_endpoint_tls_verify: true, token_endpoint_url: null}

            """)
        #expect(route.kafka.authentication == nil)
    }
}
