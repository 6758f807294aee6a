import Foundation
import Redis
import Testing

/// The RESP2 client against a real redis-server (scripts/redis-server: plain, password/ACL, TLS), servers the tests
/// kill and restart, a server that never answers, and fake servers that send hostile bytes.
@Suite(.timeLimit(.minutes(3)))
struct RedisClientTests {
    @Test func setGetAndExpiry() async throws {
        let client = try TestRedis.client(TestRedis.configuration(port: try TestRedis.port("KBRIDGE_TEST_REDIS_PORT")))
        try await client.ping()
        let key = TestRedis.uniqueKey()
        #expect(try await client.get(key) == nil)
        let value = Array(#"{"token":"t-1","bytes":"\u0000\r\n"}"#.utf8) + [0, 255, 13, 10]
        // Taken before the SET: the server's second starts later, so a load that slows this test only lengthens the wait.
        let stored = ContinuousClock.now
        try await client.set(key, value: value, expiresInSeconds: 3)
        #expect(try await client.get(key) == value)
        // EX 3 (far above the time between two commands on a loaded machine): gone after about three seconds (polled).
        var expired = false
        while ContinuousClock.now - stored < .seconds(30) {
            if try await client.get(key) == nil { expired = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(expired)
        #expect(ContinuousClock.now - stored >= .milliseconds(2900))
        // Without expiry, and an empty value.
        try await client.set(key, value: [], expiresInSeconds: nil)
        #expect(try await client.get(key) == [])
        await #expect(throws: RedisError.self) { try await client.set(key, value: [1], expiresInSeconds: 0) }
        await client.shutdown()
        await #expect(throws: RedisError(.shutdown, "redis \(client.endpoint): the client is shut down")) { _ = try await client.get(key) }
    }

    @Test func concurrentCommandsShareABoundedPool() async throws {
        var configuration = TestRedis.configuration(port: try TestRedis.port("KBRIDGE_TEST_REDIS_PORT"))
        configuration.poolSize = 2
        // 100 commands through 2 connections: on a full run's busy cooperative pool a waiter once waited over 10 s.
        configuration.connectTimeout = .seconds(60)
        let client = try TestRedis.client(configuration)
        let prefix = TestRedis.uniqueKey("pool")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<50 {
                group.addTask {
                    try await client.set("\(prefix):\(index)", value: Array("v\(index)".utf8), expiresInSeconds: 60)
                    let back = try await client.get("\(prefix):\(index)")
                    #expect(back == Array("v\(index)".utf8))
                }
            }
            try await group.waitForAll()
        }
        await client.shutdown()
    }

    @Test func authenticatesWithAPasswordOrAnACLUser() async throws {
        let port = try TestRedis.port("KBRIDGE_TEST_REDIS_AUTH_PORT")
        var configuration = TestRedis.configuration(port: port)
        configuration.password = try TestRedis.environment("KBRIDGE_TEST_REDIS_PASSWORD")
        let withPassword = try TestRedis.client(configuration)
        try await withPassword.ping()
        await withPassword.shutdown()

        configuration.username = try TestRedis.environment("KBRIDGE_TEST_REDIS_USERNAME")
        configuration.password = try TestRedis.environment("KBRIDGE_TEST_REDIS_USER_PASSWORD")
        let asUser = try TestRedis.client(configuration)
        let key = TestRedis.uniqueKey()
        try await asUser.set(key, value: [1, 2, 3], expiresInSeconds: 60)
        #expect(try await asUser.get(key) == [1, 2, 3])
        await asUser.shutdown()

        configuration.password = "not-the-password-\(UUID().uuidString)"
        let wrong = try TestRedis.client(configuration)
        do {
            try await wrong.ping()
            Issue.record("a wrong password was accepted")
        } catch {
            #expect(error.kind == .authentication)
            #expect(error.message.contains("AUTH as 'cache-user' refused: WRONGPASS"), "\(error)")
            #expect(!error.message.contains(configuration.password ?? "-"))
        }
        await wrong.shutdown()

        let none = try TestRedis.client(TestRedis.configuration(port: port))
        do {
            _ = try await none.get(key)
            Issue.record("a command without AUTH was accepted")
        } catch {
            #expect(error.kind == .server)
            #expect(error.message.contains("NOAUTH"), "\(error)")
        }
        await none.shutdown()
    }

    @Test func selectKeepsDatabasesApart() async throws {
        let port = try TestRedis.port("KBRIDGE_TEST_REDIS_PORT")
        var first = TestRedis.configuration(port: port)
        first.database = 2
        var second = first
        second.database = 3
        let a = try TestRedis.client(first)
        let b = try TestRedis.client(second)
        let key = TestRedis.uniqueKey("select")
        try await a.set(key, value: Array("in-2".utf8), expiresInSeconds: 60)
        #expect(try await b.get(key) == nil)
        try await b.set(key, value: Array("in-3".utf8), expiresInSeconds: 60)
        #expect(try await a.get(key) == Array("in-2".utf8))
        #expect(try await b.get(key) == Array("in-3".utf8))
        var invalid = first
        invalid.database = 999
        let c = try TestRedis.client(invalid)
        let selectError = await #expect(throws: RedisError.self) { try await c.ping() }
        #expect(selectError?.message.contains("SELECT 999 failed: ERR DB index is out of range") == true, "\(String(describing: selectError))")
        for client in [a, b, c] { await client.shutdown() }
    }

    @Test func speaksTLSAndChecksTheCertificate() async throws {
        let port = try TestRedis.port("KBRIDGE_TEST_REDIS_TLS_PORT")
        let tlsDirectory = try TestRedis.environment("KBRIDGE_TEST_REDIS_TLS_DIR")
        var configuration = TestRedis.configuration(port: port)
        configuration.tls = true
        configuration.tlsVerify = true
        configuration.serverName = "localhost"
        configuration.caCertificateFiles = [tlsDirectory + "/ca.crt"]
        let verified = try TestRedis.client(configuration)
        let key = TestRedis.uniqueKey("tls")
        try await verified.set(key, value: Array("secret".utf8), expiresInSeconds: 60)
        #expect(try await verified.get(key) == Array("secret".utf8))
        await verified.shutdown()

        // Kong's default: ssl_verify false.
        var unverified = configuration
        unverified.tlsVerify = false
        unverified.caCertificateFiles = []
        let lenient = try TestRedis.client(unverified)
        #expect(try await lenient.get(key) == Array("secret".utf8))
        await lenient.shutdown()

        // Verified against the system roots only: the test CA is unknown.
        var untrusted = configuration
        untrusted.caCertificateFiles = []
        let strict = try TestRedis.client(untrusted)
        let tlsError = await #expect(throws: RedisError.self) { try await strict.ping() }
        #expect(tlsError?.kind == .tls, "\(String(describing: tlsError))")
        await strict.shutdown()

        // Plain text to a TLS port: no reply that parses, or the server closes.
        let plain = try TestRedis.client(TestRedis.configuration(port: port, readTimeout: .seconds(3)))
        await #expect(throws: RedisError.self) { try await plain.ping() }
        await plain.shutdown()
    }

    @Test func aServerThatDiesFailsCommandsAndTheClientRecoversAfterItRestarts() async throws {
        let server = try await OwnRedisServer()
        let client = try TestRedis.client(TestRedis.configuration(port: server.port, readTimeout: .seconds(5)))
        try await client.set("k", value: [1], expiresInSeconds: 60)
        #expect(try await client.get("k") == [1])
        try await server.kill()
        do {
            _ = try await client.get("k")
            Issue.record("a command to a dead server succeeded")
        } catch {
            #expect([.connect, .connectionClosed].contains(error.kind), "\(error)")
            #expect(error.message.contains("redis 127.0.0.1:\(server.port)"), "\(error)")
        }
        try await server.start()
        // The pooled connection died with the server: it is dropped, and a new one works (the new server is empty).
        #expect(try await client.get("k") == nil)
        try await client.set("k", value: [2], expiresInSeconds: 60)
        #expect(try await client.get("k") == [2])
        await client.shutdown()
        await server.stop()
    }

    @Test func aServerThatNeverAnswersTimesOut() async throws {
        let silent = try await FakeRedisServer(reply: nil)
        let client = try TestRedis.client(TestRedis.configuration(port: silent.port, readTimeout: .milliseconds(300)))
        let started = ContinuousClock.now
        do {
            _ = try await client.get("k")
            Issue.record("a silent server answered")
        } catch {
            #expect(error.kind == .timeout)
            #expect(error.message.contains("no reply to GET within 300 ms"), "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(30))
        await client.shutdown()
        await silent.shutdown()
    }

    @Test func aConnectionThatTimedOutIsNeverReused() async throws {
        // The first connection never answers; later ones answer PONG.
        let fake = try await FakeRedisServer(replies: [nil, Array("+PONG\r\n".utf8)])
        // 2 s: the answering connections must reply within it, which a loaded machine did not always do in 300 ms.
        var configuration = TestRedis.configuration(port: fake.port, readTimeout: .seconds(2))
        configuration.poolSize = 1
        let client = try TestRedis.client(configuration)
        let timedOut = await #expect(throws: RedisError.self) { try await client.ping() }
        #expect(timedOut?.kind == .timeout)
        // Reusing the silent connection would time out again: a new one answers.
        try await client.ping()
        try await client.ping()
        #expect(fake.acceptedConnections == 2)
        await client.shutdown()
        await fake.shutdown()
    }

    @Test func aReplyInPiecesIsReassembled() async throws {
        let value = Array(String(repeating: "0123456789", count: 5_000).utf8)
        let reply = Array("$\(value.count)\r\n".utf8) + value + Array("\r\n".utf8)
        let fake = try await FakeRedisServer(replies: [reply], pieces: 7)
        let client = try TestRedis.client(TestRedis.configuration(port: fake.port))
        #expect(try await client.get("k") == value)
        #expect(try await client.get("k") == value)
        #expect(fake.acceptedConnections == 1)
        await client.shutdown()
        await fake.shutdown()
    }

    @Test func cancellingTheTaskEndsTheCommandAtOnce() async throws {
        let silent = try await FakeRedisServer(reply: nil)
        let client = try TestRedis.client(TestRedis.configuration(port: silent.port, readTimeout: .seconds(600)))
        let started = ContinuousClock.now
        let pending = Task { try await client.get("k") }
        try await Task.sleep(for: .milliseconds(200))
        pending.cancel()
        do {
            _ = try await pending.value
            Issue.record("a silent server answered")
        } catch {
            #expect((error as? RedisError)?.message.contains("cancelled") == true, "\(error)")
        }
        // The read timeout is ten minutes: returning at all shows the cancellation worked.
        #expect(ContinuousClock.now - started < .seconds(60))
        await client.shutdown()
        await silent.shutdown()
    }

    @Test func theConfigurationNeverPrintsThePassword() {
        var configuration = RedisConfiguration(host: "cache.internal")
        configuration.username = "u"
        configuration.password = "hunter2-secret"
        #expect("\(configuration)" == "redis cache.internal:6379 database 0 user 'u' with a password, pool 256")
        #expect(!String(reflecting: configuration).contains("hunter2"))
    }

    @Test func aCommandWaitsForABusyPoolOnlySoLong() async throws {
        let silent = try await FakeRedisServer(reply: nil)
        var configuration = TestRedis.configuration(port: silent.port, readTimeout: .seconds(20))
        configuration.poolSize = 1
        configuration.connectTimeout = .milliseconds(300)
        let client = try TestRedis.client(configuration)
        let first = Task { try await client.get("a") }
        try await Task.sleep(for: .milliseconds(200))
        do {
            _ = try await client.get("b")
            Issue.record("a second command got a connection from a full pool")
        } catch {
            #expect(error.kind == .poolExhausted, "\(error)")
        }
        first.cancel()
        await #expect(throws: RedisError.self) { _ = try await first.value }
        await client.shutdown()
        await silent.shutdown()
    }

    @Test(arguments: [
        ("$99999999999\r\n", "larger than the limit of 16777216"),
        ("$-5\r\n", "negative bulk string length"),
        (String(repeating: "*1\r\n", count: 100) + ":1\r\n", "nested deeper than 8"),
        ("*99999999\r\n", "array of 99999999 values is larger than the limit"),
        (":99999999999999999999\r\n", "is not an integer"),
        (":9223372036854775808\r\n", "overflows 64 bits"),
        ("HTTP/1.1 400 Bad Request\r\n\r\n", "unknown reply type byte 0x48"),
        ("+OK\n", "a bare LF"),
        ("$3\r\nabcXY", "not followed by CRLF"),
        ("+" + String(repeating: "x", count: 70_000), "a line longer than 65536 bytes"),
        ("%1\r\n+a\r\n+b\r\n", "kbridge speaks RESP2"),
    ])
    func hostileRepliesAreClearErrors(reply: String, expected: String) async throws {
        let fake = try await FakeRedisServer(reply: Array(reply.utf8))
        let client = try TestRedis.client(TestRedis.configuration(port: fake.port, readTimeout: .seconds(20)))
        do {
            _ = try await client.get("k")
            Issue.record("a hostile reply was accepted")
        } catch {
            #expect(error.kind == .protocolViolation, "\(error)")
            #expect(error.message.contains(expected), "\(error)")
            #expect(error.message.contains("reply to GET"), "\(error)")
        }
        await client.shutdown()
        await fake.shutdown()
    }

    @Test func unexpectedButWellFormedRepliesAreRefused() async throws {
        let fake = try await FakeRedisServer(reply: Array(":42\r\n".utf8))
        let client = try TestRedis.client(TestRedis.configuration(port: fake.port))
        await #expect(throws: RedisError(.protocolViolation, "redis 127.0.0.1:\(fake.port): unexpected reply to GET: :42")) {
            _ = try await client.get("k")
        }
        await client.shutdown()
        await fake.shutdown()
    }

    /// Latency of a GET round trip on loopback (printed; the numbers go into the report, nothing is asserted on them).
    @Test func getRoundTripLatency() async throws {
        let client = try TestRedis.client(TestRedis.configuration(port: try TestRedis.port("KBRIDGE_TEST_REDIS_PORT")))
        let key = TestRedis.uniqueKey("latency")
        try await client.set(key, value: Array(#"{"access_token":"t-1","expires_in":300}"#.utf8), expiresInSeconds: 60)
        var samples: [Duration] = []
        samples.reserveCapacity(10_000)
        for _ in 0..<10_000 {
            let start = ContinuousClock.now
            _ = try await client.get(key)
            samples.append(ContinuousClock.now - start)
        }
        samples.sort()
        func micros(_ duration: Duration) -> Double { Double(duration.components.attoseconds) / 1e12 + Double(duration.components.seconds) * 1e6 }
        print("redis GET round trip (10,000, loopback): median \(micros(samples[5_000])) µs, p99 \(micros(samples[9_900])) µs")
        #expect(samples.count == 10_000)
        await client.shutdown()
    }
}

/// The decoder alone: incomplete input, exact consumption, bounds.
@Suite struct RESPDecoderTests {
    @Test func decodesEachTypeAndSaysWhenMoreIsNeeded() throws {
        let reply = Array("*4\r\n+OK\r\n-ERR no\r\n:-7\r\n$3\r\na\r\n\r\n+next".utf8)
        let decoded = try RESPDecoder.decode(reply)
        #expect(decoded?.value == .array([.simpleString("OK"), .error("ERR no"), .integer(-7), .bulkString(Array("a\r\n".utf8))]))
        #expect(decoded?.consumed == reply.count - 5)
        for cut in 0..<(reply.count - 5) {
            #expect(try RESPDecoder.decode(Array(reply[..<cut])) == nil, "prefix of \(cut) bytes")
        }
        #expect(try RESPDecoder.decode(Array("$-1\r\n".utf8))?.value == .bulkString(nil))
        #expect(try RESPDecoder.decode(Array("*-1\r\n".utf8))?.value == .array(nil))
        #expect(try RESPDecoder.decode(Array(":-9223372036854775807\r\n".utf8))?.value == .integer(-9_223_372_036_854_775_807))
    }

    @Test func limitsApplyBeforeTheDataArrives() throws {
        var limits = RESPLimits()
        limits.maximumBulkLength = 10
        limits.maximumElements = 3
        #expect(throws: RESPProtocolError(reason: "bulk string of 11 bytes is larger than the limit of 10", offset: 1)) {
            try RESPDecoder.decode(Array("$11\r\n".utf8), limits: limits)
        }
        #expect(throws: RESPProtocolError.self) { try RESPDecoder.decode(Array("*2\r\n*2\r\n:1\r\n:2\r\n".utf8), limits: limits) }
        #expect(throws: RESPProtocolError.self) { try RESPDecoder.decode(Array("$\r\n".utf8)) }
        #expect(throws: RESPProtocolError.self) { try RESPDecoder.decode(Array(":-\r\n".utf8)) }
    }
}
