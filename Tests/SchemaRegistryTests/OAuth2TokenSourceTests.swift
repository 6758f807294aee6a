import AsyncHTTPClient
import Foundation
import SchemaRegistry
import TestSupport
import Testing

/// The OAuth2 client-credentials client shared by the registry and the Kafka OAUTHBEARER login, against a real
/// HTTP token endpoint.
@Suite(.timeLimit(.minutes(1)))
struct OAuth2TokenSourceTests {
    static func credentials(_ server: TestHTTPServer, scopes: [String] = []) -> OAuth2ClientCredentials {
        var credentials = OAuth2ClientCredentials(tokenEndpoint: "\(server.url)/token", clientID: "client one", clientSecret: "s3cr3t&=")
        credentials.scopes = scopes
        return credentials
    }

    static func source(_ credentials: OAuth2ClientCredentials) -> OAuth2TokenSource {
        OAuth2TokenSource(credentials: credentials, httpClient: .shared, tls: nil, timeout: .seconds(5))
    }

    @Test func theFormCarriesTheCredentialsAndScopesAndTheAnswerIsRead() async throws {
        let server = try await TestHTTPServer { _ in .json(#"{"access_token":"abc","token_type":"Bearer","expires_in":120}"#) }
        let token = try await Self.source(Self.credentials(server, scopes: ["kafka.write", "kafka.read"])).fetch()
        await server.shutdown()
        #expect(token.value == "abc")
        #expect(token.lifetime == .seconds(120))
        #expect(abs(token.expires.timeIntervalSinceNow - 120) < 30)
        let request = try #require(server.requests.first)
        #expect(request.method == "POST")
        #expect(request.header("content-type") == "application/x-www-form-urlencoded")
        #expect(request.bodyText == "grant_type=client_credentials&client_id=client%20one&client_secret=s3cr3t%26%3D&scope=kafka.write%20kafka.read")
    }

    @Test func cachedTokensAreReusedAndFetchAlwaysAsks() async throws {
        let server = try await TestHTTPServer { _ in .json(#"{"access_token":"abc","expires_in":3600}"#) }
        let source = Self.source(Self.credentials(server))
        _ = try await source.token()
        _ = try await source.token()
        #expect(server.requests.count == 1)
        _ = try await source.fetch()
        #expect(server.requests.count == 2)
        await server.shutdown()
    }

    @Test func aRefusalNamesTheEndpointStatusAndOAuthError() async throws {
        let refusing = try await TestHTTPServer { _ in
            .json(#"{"error":"invalid_client","error_description":"unknown client\u0000\n\#(String(repeating: "x", count: 5000))"}"#, status: 401)
        }
        do {
            _ = try await Self.source(Self.credentials(refusing)).fetch()
            Issue.record("a refused request must throw")
        } catch {
            #expect(error.kind == .refused)
            #expect(error.status == 401)
            #expect(error.oauthError == "invalid_client")
            // Control characters dropped, length bounded: the text ends up in logs and HTTP answers.
            let description = try #require(error.errorDescription)
            #expect(description.hasPrefix("unknown client") && description.count <= 300)
            #expect(!description.contains("\n") && !description.contains("\u{0}"))
            #expect("\(error)".contains("the token endpoint \(refusing.url)/token refused the token request: HTTP 401 invalid_client (unknown client"))
            #expect(!"\(error)".contains("s3cr3t"))
        }
        await refusing.shutdown()
    }

    @Test func anUnreachableEndpointIsSaidToBeUnreachable() async throws {
        let closed = try await TestHTTPServer { _ in .init() }
        let credentials = Self.credentials(closed)
        await closed.shutdown()
        do {
            _ = try await Self.source(credentials).token()
            Issue.record("an unreachable endpoint must throw")
        } catch {
            #expect(error.kind == .unreachable)
            #expect("\(error)".contains("the token endpoint \(credentials.tokenEndpoint) is unreachable"))
        }
    }

    @Test(arguments: [
        (#"{"access_token":"a"}"#, Duration.seconds(300)),  // absent: the default
        (#"{"access_token":"a","expires_in":-5}"#, .seconds(1)),  // clamped up
        (#"{"access_token":"a","expires_in":1e300}"#, .seconds(365 * 24 * 3600)),  // clamped down
        (#"{"access_token":"a","expires_in":2.5}"#, .milliseconds(2500)),
    ])
    func lifetimesAreBounded(answer: String, lifetime: Duration) async throws {
        let server = try await TestHTTPServer { _ in .json(answer) }
        let token = try await Self.source(Self.credentials(server)).fetch()
        await server.shutdown()
        #expect(token.lifetime == lifetime)
    }

    @Test func anAnswerWithoutAnAccessTokenIsRefused() async throws {
        let server = try await TestHTTPServer { _ in .json(#"{"token_type":"Bearer"}"#) }
        await #expect(throws: OAuth2Error.self) { try await Self.source(Self.credentials(server)).fetch() }
        await server.shutdown()
    }

    @Test func theSubjectOfAJWTIsRead() {
        func base64URL(_ text: String) -> String {
            Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let jwt = base64URL(#"{"alg":"HS256"}"#) + "." + base64URL(#"{"sub":"svc-ingest?>","exp":1}"#) + ".c2ln"
        #expect(OAuth2Token(value: jwt, lifetime: .seconds(1), received: Date()).jwtSubject == "svc-ingest?>")
        #expect(OAuth2Token(value: "opaque-token", lifetime: .seconds(1), received: Date()).jwtSubject == nil)
        let noSubject = base64URL("{}") + "." + base64URL(#"{"exp":1}"#) + ".c2ln"
        #expect(OAuth2Token(value: noSubject, lifetime: .seconds(1), received: Date()).jwtSubject == nil)
        #expect(OAuth2Token(value: "a.!!!.c", lifetime: .seconds(1), received: Date()).jwtSubject == nil)
    }
}
