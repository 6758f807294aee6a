import Foundation
import NIOSSL
import Testing

@testable import Callout

/// Runs `body` with a started server and a client, and always stops both (AsyncHTTPClient traps in debug builds
/// when a client is dropped without shutdown).
func withServerAndClient<T>(
    tls: TLSConfiguration? = nil,
    configuration: CalloutClient.Configuration = .init(),
    _ body: (TestHTTPServer, CalloutClient) async throws -> T
) async throws -> T {
    let server = try await TestHTTPServer.start(tls: tls)
    let client: CalloutClient
    do {
        client = try CalloutClient(configuration: configuration)
    } catch {
        try? await server.stop()
        throw error
    }
    do {
        let result = try await body(server, client)
        try await client.shutdown()
        try await server.stop()
        return result
    } catch {
        try? await client.shutdown()
        try? await server.stop()
        throw error
    }
}

/// The call's error, or nil when it succeeded.
func callError(_ client: CalloutClient, _ request: CalloutRequest) async -> CalloutError? {
    do {
        _ = try await client.execute(request)
        return nil
    } catch {
        return error
    }
}

func values(_ headers: [(String, String)], _ name: String) -> [String] {
    headers.filter { $0.0.lowercased() == name }.map(\.1)
}

func elapsed(since start: ContinuousClock.Instant) -> Duration { ContinuousClock.now - start }

// Serialized: several tests measure elapsed time, which parallel neighbours on a 2-core machine would distort.
@Suite("CalloutTests: client against real local servers", .serialized)
struct CalloutClientTests {
    @Test("GET keeps header order and repeats; query reaches the server")
    func getRoundTrip() async throws {
        try await withServerAndClient { server, client in
            let response = try await client.execute(CalloutRequest(
                url: "http://127.0.0.1:\(server.port)/echo?x=1&y=two",
                headers: [("X-A", "1"), ("X-B", "2"), ("X-A", "3")]))
            #expect(response.status == 200)
            #expect(values(response.headers, "x-method") == ["GET"])
            #expect(values(response.headers, "x-target") == ["/echo?x=1&y=two"])
            #expect(values(response.headers, "x-echo-x-a") == ["1", "3"])
            #expect(values(response.headers, "x-echo-x-b") == ["2"])
            #expect(values(response.headers, "x-echo-host") == ["127.0.0.1:\(server.port)"])
            #expect(response.body.isEmpty)
        }
    }

    @Test("the client connects to the canonical URL the policy judged (lenient IPv4 spellings, case, fragment)")
    func canonicalURLIsWhatIsSent() async throws {
        try await withServerAndClient { server, client in
            for spelling in ["0x7f000001", "2130706433", "0177.0.0.1", "127.1"] {
                let response = try await client.execute(CalloutRequest(url: "HTTP://\(spelling):\(server.port)/echo?q=1#fragment"))
                #expect(response.status == 200)
                #expect(values(response.headers, "x-echo-host") == ["127.0.0.1:\(server.port)"], "\(spelling)")
                #expect(values(response.headers, "x-target") == ["/echo?q=1"])
            }
        }
    }

    @Test("POST sends the body byte for byte; framing headers from the caller are replaced")
    func postRoundTrip() async throws {
        try await withServerAndClient { server, client in
            let body: [UInt8] = [0x00, 0xFF, 0x7B, 0x0D, 0x0A] + Array(repeating: 0x41, count: 100_000)
            let response = try await client.execute(CalloutRequest(
                method: "POST", url: "http://127.0.0.1:\(server.port)/echo",
                headers: [("Content-Type", "application/octet-stream"), ("Content-Length", "3"), ("Transfer-Encoding", "gzip")],
                body: body))
            #expect(response.status == 200)
            #expect(response.body == body)
            #expect(values(response.headers, "x-method") == ["POST"])
            #expect(values(response.headers, "x-echo-content-type") == ["application/octet-stream"])
            #expect(values(response.headers, "x-echo-content-length") == [String(body.count)])
            #expect(values(response.headers, "x-echo-transfer-encoding").isEmpty)
        }
    }

    @Test("non-2xx statuses are responses, not errors; redirects are returned, not followed")
    func nonSuccessStatuses() async throws {
        try await withServerAndClient { server, client in
            for code in [404, 418, 500, 503] {
                let response = try await client.execute(CalloutRequest(url: "http://127.0.0.1:\(server.port)/status/\(code)"))
                #expect(response.status == code)
                #expect(response.body == Array("status \(code)".utf8))
            }
            let redirect = try await client.execute(CalloutRequest(url: "http://127.0.0.1:\(server.port)/redirect"))
            #expect(redirect.status == 302)
            #expect(values(redirect.headers, "location") == ["/echo"])
            #expect(server.events.requests == 5)
        }
    }

    @Test("a 200 ms timeout fires against a server that answers after 60 s (bounds far from both: a loaded machine cannot fail this)")
    func timeoutFires() async throws {
        try await withServerAndClient { server, client in
            let start = ContinuousClock.now
            let error = await callError(client, CalloutRequest(
                url: "http://127.0.0.1:\(server.port)/delay/60000", timeout: .milliseconds(200)))
            let took = elapsed(since: start)
            #expect(error?.kind == .timeout)
            #expect(error?.description.contains("127.0.0.1:\(server.port)") == true)
            #expect(took >= .milliseconds(190))
            #expect(took < .seconds(20), "took \(took)")
        }
    }

    @Test("timeout zero is bounded by the client's maximum timeout; larger timeouts are clamped to it")
    func zeroTimeoutIsBounded() async throws {
        try await withServerAndClient(configuration: .init(maximumTimeout: .milliseconds(300))) { server, client in
            for timeout in [Duration.zero, .seconds(30)] {
                let start = ContinuousClock.now
                let error = await callError(client, CalloutRequest(url: "http://127.0.0.1:\(server.port)/delay/60000", timeout: timeout))
                #expect(error?.kind == .timeout)
                #expect(elapsed(since: start) < .seconds(20))
            }
        }
    }

    @Test("the timeout also covers a body that never ends")
    func timeoutCoversBody() async throws {
        try await withServerAndClient(configuration: .init(maximumResponseBytes: Int.max)) { server, client in
            let start = ContinuousClock.now
            let error = await callError(client, CalloutRequest(url: "http://127.0.0.1:\(server.port)/endless", timeout: .milliseconds(300)))
            #expect(error?.kind == .timeout)
            #expect(elapsed(since: start) < .seconds(20))
        }
    }

    @Test("cancelling the calling task cancels the in-flight request and closes its connection")
    func cancellation() async throws {
        try await withServerAndClient { server, client in
            let start = ContinuousClock.now
            let task = Task {
                await callError(client, CalloutRequest(url: "http://127.0.0.1:\(server.port)/delay/60000", timeout: .seconds(90)))
            }
            try await Task.sleep(for: .milliseconds(200))
            task.cancel()
            let error = await task.value
            #expect(error?.kind == .cancelled)
            #expect(elapsed(since: start) < .seconds(20))
            // The server sees the connection go away long before its 5 s answer.
            let deadline = ContinuousClock.now + .seconds(2)
            while server.events.closedConnections == 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(server.events.closedConnections >= 1)
        }
    }

    @Test("responses over the size cap fail with tooLarge; at the cap they pass")
    func sizeCap() async throws {
        try await withServerAndClient(configuration: .init(maximumResponseBytes: 4096)) { server, client in
            let chunked = await callError(client, CalloutRequest(url: "http://127.0.0.1:\(server.port)/bytes/10000"))
            #expect(chunked?.kind == .tooLarge)
            #expect(chunked?.description.contains("127.0.0.1:\(server.port)") == true)
            let declared = await callError(client, CalloutRequest(url: "http://127.0.0.1:\(server.port)/bytes-cl/10000"))
            #expect(declared?.kind == .tooLarge)
            let exact = try await client.execute(CalloutRequest(url: "http://127.0.0.1:\(server.port)/bytes/4096"))
            #expect(exact.body.count == 4096)
            let exactDeclared = try await client.execute(CalloutRequest(url: "http://127.0.0.1:\(server.port)/bytes-cl/4096"))
            #expect(exactDeclared.body.count == 4096)
            // HEAD: a Content-Length over the cap announces a body that is not sent.
            let head = try await client.execute(CalloutRequest(method: "HEAD", url: "http://127.0.0.1:\(server.port)/bytes-cl/10000"))
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
        }
    }

    @Test("an endless body stops at the cap (streamed, memory bounded) and the connection is closed")
    func endlessBodyIsCut() async throws {
        try await withServerAndClient(configuration: .init(maximumResponseBytes: 1 << 20)) { server, client in
            let start = ContinuousClock.now
            let error = await callError(client, CalloutRequest(url: "http://127.0.0.1:\(server.port)/endless", timeout: .seconds(20)))
            #expect(error?.kind == .tooLarge)
            #expect(elapsed(since: start) < .seconds(15))
            let deadline = ContinuousClock.now + .seconds(2)
            while server.events.closedConnections == 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(server.events.closedConnections >= 1)
        }
    }

    @Test("connection refused fails at once with connectFailed naming host:port")
    func connectionRefused() async throws {
        let server = try await TestHTTPServer.start()
        let port = server.port
        try await server.stop()
        let client = try CalloutClient()
        let start = ContinuousClock.now
        let error = await callError(client, CalloutRequest(url: "http://127.0.0.1:\(port)/echo", timeout: .seconds(60)))
        let took = elapsed(since: start)
        try await client.shutdown()
        #expect(error?.kind == .connectFailed)
        #expect(error?.description.contains("127.0.0.1:\(port)") == true, "\(String(describing: error))")
        #expect(took < .seconds(20), "took \(took)")
    }

    @Test("two parallel 5 s calls take about 5 s, not 10")
    func parallelCalls() async throws {
        try await withServerAndClient { server, client in
            let url = "http://127.0.0.1:\(server.port)/delay/5000"
            let start = ContinuousClock.now
            async let first = client.execute(CalloutRequest(url: url))
            async let second = client.execute(CalloutRequest(url: url))
            let (a, b) = try await (first, second)
            let took = elapsed(since: start)
            #expect(a.status == 200 && b.status == 200)
            #expect(took < .seconds(9), "took \(took)")
        }
    }

    @Test("invalid requests fail before connecting, without echoing header values or credentials")
    func invalidRequests() async throws {
        try await withServerAndClient { server, client in
            let base = "http://127.0.0.1:\(server.port)/echo"
            let lowerMethod = await callError(client, CalloutRequest(method: "get", url: base))
            #expect(lowerMethod?.kind == .invalidURL)
            let badValue = await callError(client, CalloutRequest(url: base, headers: [("Authorization", "Bearer secret\r\nX-Evil: 1")]))
            #expect(badValue?.kind == .invalidURL)
            #expect(badValue?.description.contains("secret") == false)
            #expect(badValue?.description.contains("Authorization") == true)
            let badName = await callError(client, CalloutRequest(url: base, headers: [("X Bad", "v")]))
            #expect(badName?.kind == .invalidURL)
            let userinfo = await callError(client, CalloutRequest(url: "http://user:secret@127.0.0.1:\(server.port)/echo"))
            #expect(userinfo?.kind == .invalidURL)
            #expect(userinfo?.description.contains("secret") == false)
            #expect(server.events.requests == 0)
        }
    }

    @Test("http URLs go through the http proxy (CONNECT tunnel) with basic proxy authentication")
    func httpProxy() async throws {
        try await withServerAndClient { server, client in
            let proxy = try await TestConnectProxy.start(backendPort: server.port)
            do {
                // The destination name does not resolve: only the proxy can reach it.
                let response = try await client.execute(CalloutRequest(
                    url: "http://callout-destination.invalid:8081/echo?via=proxy",
                    proxy: CalloutProxy(httpProxy: "http://127.0.0.1:\(proxy.port)", username: "user", password: "pass")))
                #expect(response.status == 200)
                #expect(values(response.headers, "x-target") == ["/echo?via=proxy"])
                #expect(values(response.headers, "x-echo-host") == ["callout-destination.invalid:8081"])
                // Proxy credentials go to the proxy only.
                #expect(values(response.headers, "x-echo-proxy-authorization").isEmpty)
                #expect(proxy.connects.map(\.target) == ["callout-destination.invalid:8081"])
                #expect(proxy.connects.map(\.authorization) == ["Basic dXNlcjpwYXNz"])

                // An https_proxy setting does not apply to http URLs: this one goes direct.
                let direct = try await client.execute(CalloutRequest(
                    url: "http://127.0.0.1:\(server.port)/echo",
                    proxy: CalloutProxy(httpsProxy: "http://127.0.0.1:\(proxy.port)")))
                #expect(direct.status == 200)
                #expect(proxy.connects.count == 1)

                let tlsProxy = await callError(client, CalloutRequest(
                    url: "http://callout-destination.invalid/echo", proxy: CalloutProxy(httpProxy: "https://127.0.0.1:\(proxy.port)")))
                #expect(tlsProxy?.kind == .invalidURL)
                let credentialsInURL = await callError(client, CalloutRequest(
                    url: "http://callout-destination.invalid/echo", proxy: CalloutProxy(httpProxy: "http://u:secret@127.0.0.1:\(proxy.port)")))
                #expect(credentialsInURL?.kind == .invalidURL)
                #expect(credentialsInURL?.description.contains("secret") == false)
            } catch {
                try? await proxy.stop()
                throw error
            }
            try await proxy.stop()
        }
    }

    @Test("calls after shutdown fail cleanly; shutdown twice is harmless")
    func callsAfterShutdown() async throws {
        let server = try await TestHTTPServer.start()
        let client = try CalloutClient()
        let before = try await client.execute(CalloutRequest(url: "http://127.0.0.1:\(server.port)/echo"))
        #expect(before.status == 200)
        try await client.shutdown()
        try await client.shutdown()
        let after = await callError(client, CalloutRequest(url: "http://127.0.0.1:\(server.port)/echo"))
        #expect(after?.kind == .other)
        #expect(after?.description.contains("shut down") == true)
        let viaProxy = await callError(client, CalloutRequest(
            url: "http://127.0.0.1:\(server.port)/echo", proxy: CalloutProxy(httpProxy: "http://127.0.0.1:\(server.port)")))
        #expect(viaProxy?.description.contains("shut down") == true)
        try await server.stop()
    }

    @Test("client variants (proxies, server names) are bounded")
    func variantsAreBounded() async throws {
        try await withServerAndClient(configuration: .init(maximumClientVariants: 1)) { server, client in
            let proxy = try await TestConnectProxy.start(backendPort: server.port)
            do {
                let first = try await client.execute(CalloutRequest(
                    url: "http://a.invalid/echo", proxy: CalloutProxy(httpProxy: "http://127.0.0.1:\(proxy.port)")))
                #expect(first.status == 200)
                let again = try await client.execute(CalloutRequest(
                    url: "http://b.invalid/echo", proxy: CalloutProxy(httpProxy: "http://127.0.0.1:\(proxy.port)")))
                #expect(again.status == 200)
                let second = await callError(client, CalloutRequest(
                    url: "http://a.invalid/echo", proxy: CalloutProxy(httpProxy: "http://localhost:\(proxy.port)")))
                #expect(second?.kind == .other)
                #expect(second?.description.contains("distinct proxy") == true)
            } catch {
                try? await proxy.stop()
                throw error
            }
            try await proxy.stop()
        }
    }
}

@Suite("CalloutTests: TLS against a real handshake", .serialized)
struct CalloutTLSTests {
    let certificates: TestCertificates

    init() async throws {
        certificates = try await TestCertificates.generate()
    }

    @Test("verification fails without the CA, succeeds with caCertificateFiles, and tlsVerify false skips it for that call only")
    func verification() async throws {
        defer { certificates.remove() }
        let tls = try certificates.serverTLSConfiguration()
        try await withServerAndClient(tls: tls) { server, client in
            let url = "https://localhost:\(server.port)/echo"
            let unverified = await callError(client, CalloutRequest(url: url))
            #expect(unverified?.kind == .tls, "\(String(describing: unverified))")
            #expect(unverified?.description.contains("localhost:\(server.port)") == true)

            let skipped = try await client.execute(CalloutRequest(url: url, tlsVerify: false))
            #expect(skipped.status == 200)

            // The skip was per request: verification is still on for the next call on the same client.
            let againUnverified = await callError(client, CalloutRequest(url: url))
            #expect(againUnverified?.kind == .tls)
        }
        try await withServerAndClient(tls: tls, configuration: .init(caCertificateFiles: [certificates.caFile])) { server, client in
            let response = try await client.execute(CalloutRequest(method: "POST", url: "https://localhost:\(server.port)/echo", body: [1, 2, 3]))
            #expect(response.status == 200)
            #expect(response.body == [1, 2, 3])
        }
    }

    @Test("serverName sets SNI and the verified name while connecting to the URL's host")
    func serverName() async throws {
        defer { certificates.remove() }
        let tls = try certificates.serverTLSConfiguration()
        try await withServerAndClient(tls: tls, configuration: .init(caCertificateFiles: [certificates.caFile])) { server, client in
            let url = "https://127.0.0.1:\(server.port)/echo"
            // The certificate names callout.test and localhost, not 127.0.0.1.
            let byAddress = await callError(client, CalloutRequest(url: url))
            #expect(byAddress?.kind == .tls)
            let named = try await client.execute(CalloutRequest(url: url, serverName: "callout.test"))
            #expect(named.status == 200)
            #expect(values(named.headers, "x-echo-host") == ["127.0.0.1:\(server.port)"])
            let wrongName = await callError(client, CalloutRequest(url: url, serverName: "other.test"))
            #expect(wrongName?.kind == .tls)
            let ipName = await callError(client, CalloutRequest(url: url, serverName: "10.0.0.1"))
            #expect(ipName?.kind == .invalidURL)
        }
    }

    @Test("https URLs go through the https proxy as a CONNECT tunnel, verified end to end")
    func httpsProxy() async throws {
        defer { certificates.remove() }
        let tls = try certificates.serverTLSConfiguration()
        try await withServerAndClient(tls: tls, configuration: .init(caCertificateFiles: [certificates.caFile])) { server, client in
            let proxy = try await TestConnectProxy.start(backendPort: server.port)
            do {
                // callout.test does not resolve; the tunnel leads to the TLS server whose certificate names it.
                let settings = CalloutProxy(httpProxy: "http://127.0.0.1:1", httpsProxy: "http://127.0.0.1:\(proxy.port)")
                let response = try await client.execute(CalloutRequest(url: "https://callout.test:8443/echo", proxy: settings))
                #expect(response.status == 200)
                #expect(values(response.headers, "x-echo-host") == ["callout.test:8443"])
                #expect(proxy.connects.map(\.target) == ["callout.test:8443"])
                // Through the same proxy, a name the certificate does not carry fails verification.
                let wrongName = await callError(client, CalloutRequest(
                    url: "https://callout.test:8443/echo", serverName: "other.test", proxy: settings))
                #expect(wrongName?.kind == .tls)
            } catch {
                try? await proxy.stop()
                throw error
            }
            try await proxy.stop()
        }
    }

    @Test("a missing or non-PEM CA file fails at init, naming the file")
    func badCAFile() throws {
        defer { certificates.remove() }
        let missing = certificates.directory + "/does-not-exist.pem"
        #expect {
            _ = try CalloutClient(configuration: .init(caCertificateFiles: [certificates.caFile, missing]))
        } throws: { error in
            (error as? CalloutError)?.kind == .tls && "\(error)".contains(missing)
        }
        let garbage = certificates.directory + "/garbage.pem"
        try "not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        #expect {
            _ = try CalloutClient(configuration: .init(caCertificateFiles: [garbage]))
        } throws: { error in
            (error as? CalloutError)?.kind == .tls && "\(error)".contains(garbage)
        }
    }
}
