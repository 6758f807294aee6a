import AsyncHTTPClient
import Foundation
import SchemaRegistry
import TestSupport
import Testing

/// `token_endpoint_tls_verify`: an https token endpoint with a self-signed certificate is refused with verification
/// and answers without it.
@Suite(.timeLimit(.minutes(1)))
struct OAuth2TLSTests {
    @Test func verificationRefusesASelfSignedEndpointAndCanBeTurnedOff() async throws {
        // Every request answered with one token answer, over TLS.
        let server = try await TestHTTPServer(selfSignedTLS: true) { _ in
            TestHTTPServer.Response(headers: [("Content-Type", "application/json"), ("Connection", "close")],
                                    body: #"{"access_token":"over-tls","expires_in":60}"#)
        }
        let credentials = OAuth2ClientCredentials(tokenEndpoint: "\(server.url)/token",
                                                  clientID: "a", clientSecret: "b")
        let verifying = OAuth2TokenSource(credentials: credentials, httpClient: .shared,
                                          tls: OAuth2TokenSource.tlsConfiguration(verify: true), timeout: .seconds(5))
        do {
            _ = try await verifying.fetch()
            Issue.record("a self-signed endpoint must be refused with verification")
        } catch {
            #expect(error.kind == .unreachable, "\(error)")
            #expect("\(error)".contains(credentials.tokenEndpoint), "\(error)")
        }
        let trusting = OAuth2TokenSource(credentials: credentials, httpClient: .shared,
                                         tls: OAuth2TokenSource.tlsConfiguration(verify: false), timeout: .seconds(5))
        #expect(try await trusting.fetch().value == "over-tls")
        await server.shutdown()
    }
}
