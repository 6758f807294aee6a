import Crypto
import Foundation
import JWT
import NIOCore
import PasswordHash
import Testing

@testable import Bridge

/// `client_authentication` and `rate_limit` as the configuration reads them (every refusal names file:line:column and
/// the key), the password hashes through libxcrypt, and the token buckets' arithmetic.
@Suite struct ClientAuthenticationConfigurationTests {
    static let keys = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../JWTTests/keys").standardized
    /// Made with Python's `bcrypt` 5.0.0 (`hashpw(b'correct horse battery', gensalt(rounds=10))`).
    static let bcryptHash = "$2b$10$zt4f9h2YLZPslwAvplZOs.H3yVIu7XWXwuWAmw/aTgcruHs1wNnl."

    static func route(_ block: String) -> String {
        """
        routes:
          - path: /in
            topic: t
            bootstrap_servers: k:9092
        \(block.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n"))
        """
    }

    @Test func everyMethodReadsWithItsDefaults() throws {
        let loaded = try parse(Self.route("""
            client_authentication:
              api_key:
                keys: [{consumer: alice, key: 0123456789abcdef0123}]
              basic:
                users: [{username: bob, password_hash: "\(Self.bcryptHash)"}]
              jwt:
                keys: [{file: \(Self.keys.appendingPathComponent("rsa.pub.pem").path)}]
            rate_limit:
              consumer: {rate: 10, per: minute}
            """))
        let route = try #require(loaded.configuration.routes.first)
        let authentication = try #require(route.clientAuthentication)
        #expect(authentication.realm == "kbridge")
        #expect(!authentication.hideCredentials)
        #expect(authentication.consumerRecordHeader == nil)
        #expect(authentication.apiKey?.keyNames == ["apikey"])
        #expect(authentication.apiKey?.keys.first?.consumer == "alice")
        #expect(authentication.basic?.users.first?.consumer == "bob")
        #expect(authentication.basic?.users.first?.passwordHash.cost == 10)
        #expect(authentication.basic?.cacheTTL == .seconds(60))
        #expect(authentication.jwt?.algorithms == [.ps256, .ps384, .ps512, .rs256, .rs384, .rs512])
        #expect(authentication.jwt?.consumerClaim == "sub")
        #expect(authentication.jwt?.requiredClaims == ["exp"])
        #expect(route.rateLimit?.consumer == RateLimitSettings.Limit(rate: 10, period: .seconds(60), burst: 10))
        #expect(route.rateLimit?.route == nil)
        // The Kafka SASL key keeps its meaning next to it.
        #expect(route.kafka.authentication == nil)
    }

    @Test func plainPasswordsAreRefused() {
        let plainKey = issues(Self.route("""
            client_authentication:
              basic:
                users: [{username: bob, password: s3cret}]
            """))
        #expect(plainKey.contains { $0.hasPrefix("test.yaml:7:") && $0.contains("routes[0].client_authentication.basic.users[0].password: plain passwords are refused") },
                "\(plainKey)")
        let plainHash = issues(Self.route("""
            client_authentication:
              basic:
                users: [{username: bob, password_hash: s3cret}]
            """))
        #expect(plainHash.contains { $0.contains("users[0].password_hash: not a password hash") }, "\(plainHash)")
        for (hash, reason) in [("$1$abc$def", "unsupported hash scheme '$1$'"), ("$6$salt$hash", "unsupported hash scheme '$6$'"),
                               ("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", "salt (8 bytes or more)"),
                               ("$argon2id$v=19$m=1048576,t=3,p=4$lV8NFXPv2rRsguIVXLRKNg$lekIxmTcDqtwt5OmH+yTFSFycIy3b6dbDrs8fVn7M6I",
                                "argon2 m=1048576 is out of range 8...262144"),
                               ("$argon2id$v=16$m=1024,t=2,p=2$lV8NFXPv2rRsguIVXLRKNg$lekIxmTcDqtwt5OmH+yTFSFycIy3b6dbDrs8fVn7M6I", "version 19"),
                               ("$argon2x$v=19$m=1024,t=2,p=2$lV8NFXPv2rRsguIVXLRKNg$lekIxmTcDqtwt5OmH+yTFSFycIy3b6dbDrs8fVn7M6I", "unknown argon2 variant"),
                               ("$2b$10$short", "60 in all"),
                               ("$2b$31$zt4f9h2YLZPslwAvplZOs.H3yVIu7XWXwuWAmw/aTgcruHs1wNnl.", "cost 31 is out of range")] {
            let found = issues(Self.route("""
                client_authentication:
                  basic:
                    users: [{username: bob, password_hash: '\(hash)'}]
                """))
            #expect(found.contains { $0.contains(reason) }, "\(hash): \(found)")
        }
    }

    @Test func jwtKeysAndAlgorithmsAreCheckedAtStartUp() throws {
        let rsa = Self.keys.appendingPathComponent("rsa.pub.pem").path
        let hsWithRS = issues(Self.route("""
            client_authentication:
              jwt:
                keys: [{secret: an HMAC secret of at least thirty-two bytes}]
                algorithms: [RS256]
            """))
        #expect(hsWithRS.contains { $0.contains("jwt.algorithms[0]: RS256 needs RSA key, and the keys are: HMAC secret") }, "\(hsWithRS)")
        let none = issues(Self.route("""
            client_authentication:
              jwt:
                keys: [{file: \(rsa)}]
                algorithms: [none]
            """))
        #expect(none.contains { $0.contains("'none' is never accepted") }, "\(none)")
        let notAKey = try temporaryKeyFile("just some text, not a key")
        let unknownType = issues(Self.route("""
            client_authentication:
              jwt:
                keys: [{file: \(notAKey)}]
            """))
        #expect(unknownType.contains { $0.contains("is not a PEM key or certificate, a JWK or a JWKS") }, "\(unknownType)")
        let unknownKty = try temporaryKeyFile(#"{"kty":"XYZ","k":"c2VjcmV0"}"#)
        let unsupportedJWK = issues(Self.route("""
            client_authentication:
              jwt:
                keys: [{file: \(unknownKty)}]
            """))
        #expect(unsupportedJWK.contains { $0.contains("keys[0].file: invalid key") }, "\(unsupportedJWK)")
        let octJWK = try temporaryKeyFile(#"{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}"#)
        let symmetricFile = issues(Self.route("""
            client_authentication:
              jwt:
                keys: [{file: \(octJWK)}]
            """))
        #expect(symmetricFile.contains { $0.contains("keys[0].file: holds a symmetric key") }, "\(symmetricFile)")
        let publicKeyAsSecret = issues(Self.route("""
            client_authentication:
              jwt:
                keys: [{secret: {file: \(rsa)}}]
            """))
        #expect(publicKeyAsSecret.contains { $0.contains("never as an HMAC secret") }, "\(publicKeyAsSecret)")
    }

    @Test func jwksURLsAreReadWithTheirDefaults() throws {
        let loaded = try parse(Self.route("""
            client_authentication:
              jwt:
                keys:
                  - {jwks_url: "https://IdP.example/.well-known/jwks.json"}
                  - {jwks_url: "http://localhost:8080/jwks", jwks_refresh_interval: 60000, jwks_timeout: 1500}
                  - {jwks_url: "http://127.0.0.2/jwks"}
                  - {jwks_url: "http://[::1]:9000/jwks"}
            """))
        let jwt = try #require(loaded.configuration.routes.first?.clientAuthentication?.jwt)
        #expect(jwt.keys.isEmpty)
        #expect(jwt.keySetURLs.map(\.url) == ["https://idp.example/.well-known/jwks.json", "http://localhost:8080/jwks", "http://127.0.0.2/jwks",
                                              "http://[::1]:9000/jwks"])
        let first = try #require(jwt.keySetURLs.first)
        #expect(first.refreshInterval == .seconds(300))
        #expect(first.timeout == .seconds(5))
        #expect(first.sslVerify)
        #expect(first.caFile == nil)
        #expect(first.origin.issue("x").description == "test.yaml:8:24: routes[0].client_authentication.jwt.keys[0].jwks_url: x")
        #expect(jwt.keySetURLs[1].refreshInterval == .seconds(60))
        #expect(jwt.keySetURLs[1].timeout == .milliseconds(1500))
        // The keys' types are known once fetched: every public-key algorithm, never HMAC.
        #expect(jwt.algorithms == [.es256, .es384, .es512, .edDSA, .ps256, .ps384, .ps512, .rs256, .rs384, .rs512])
        #expect(loaded.warnings.isEmpty)

        let unverified = try parse(Self.route("""
            client_authentication:
              jwt:
                keys: [{jwks_url: "https://idp.example/jwks", jwks_ssl_verify: false}]
            """))
        #expect(unverified.configuration.routes.first?.clientAuthentication?.jwt?.keySetURLs.first?.sslVerify == false)
        #expect(unverified.warnings.contains { "\($0)".contains("keys[0].jwks_ssl_verify: the key server's certificate is not verified") },
                "\(unverified.warnings)")
    }

    @Test func jwksURLMistakesAreNamed() {
        let plainHTTP = issues(Self.route("""
            client_authentication:
              jwt:
                keys: [{jwks_url: "http://idp.example/jwks"}]
            """))
        #expect(plainHTTP.contains { $0.hasPrefix("test.yaml:7:") && $0.contains("routes[0].client_authentication.jwt.keys[0].jwks_url: plain http:// is refused")
            && $0.contains("use https://") }, "\(plainHTTP)")
        // Names that only look like this machine are not.
        for host in ["localhost.evil.example", "10.0.0.1", "128.0.0.1", "[::2]", "0.0.0.0"] {
            let found = issues(Self.route("""
                client_authentication:
                  jwt:
                    keys: [{jwks_url: "http://\(host)/jwks"}]
                """))
            #expect(found.contains { $0.contains("plain http:// is refused") }, "\(host): \(found)")
        }
        for (url, reason) in [("ftp://idp.example/jwks", "is not a usable http(s) URL: URL scheme must be http or https"),
                              ("https://user:pw@idp.example/jwks", "must not contain userinfo"), ("idp.example/jwks", "URL is not absolute"),
                              ("", "must not be empty")] {
            let found = issues(Self.route("""
                client_authentication:
                  jwt:
                    keys: [{jwks_url: "\(url)"}]
                """))
            #expect(found.contains { $0.contains("keys[0].jwks_url: ") && $0.contains(reason) }, "\(url): \(found)")
        }
        for (option, reason) in [("jwks_refresh_interval: 999", "jwks_refresh_interval: 999 is out of range 1000...86400000"),
                                 ("jwks_refresh_interval: 0", "jwks_refresh_interval: 0 is out of range"),
                                 ("jwks_refresh_interval: soon", "jwks_refresh_interval: expected an integer"),
                                 ("jwks_timeout: 0", "jwks_timeout: 0 is out of range 1...600000"),
                                 ("jwks_ssl_verify: maybe", "jwks_ssl_verify: expected true or false"),
                                 ("jwks_ca_file: /nonexistent/ca.pem", "jwks_ca_file: /nonexistent/ca.pem does not exist"),
                                 ("jwks_refresh_intervall: 60000", "jwks_refresh_intervall: unknown key (did you mean 'jwks_refresh_interval'?)")] {
            let found = issues(Self.route("""
                client_authentication:
                  jwt:
                    keys: [{jwks_url: "https://idp.example/jwks", \(option)}]
                """))
            #expect(found.contains { $0.hasPrefix("test.yaml:7:") && $0.contains("routes[0].client_authentication.jwt.keys[0].\(reason)") }, "\(option): \(found)")
        }
        let withoutURL = issues(Self.route("""
            client_authentication:
              jwt:
                keys: [{file: \(Self.keys.appendingPathComponent("rsa.pub.pem").path), jwks_timeout: 1000}]
            """))
        #expect(withoutURL.contains { $0.contains("keys[0].jwks_timeout: goes with jwks_url") }, "\(withoutURL)")
        let hmacOnly = issues(Self.route("""
            client_authentication:
              jwt:
                keys: [{jwks_url: "https://idp.example/jwks"}]
                algorithms: [HS256]
            """))
        #expect(hmacOnly.contains { $0.contains("jwt.algorithms[0]: HS256 needs HMAC secret key, and the keys are: the public keys of a JWKS URL") },
                "\(hmacOnly)")
    }

    @Test func otherMistakesAreNamed() {
        let found = issues(Self.route("""
            client_authentication:
              hide_credentials: yes please
              api_key:
                key_in_header: false
                key_in_query: false
                keys: [{consumer: a, key: short}]
            rate_limit:
              consumer: {rate: 0}
            """))
        #expect(found.contains { $0.contains("hide_credentials: expected true or false") }, "\(found)")
        #expect(found.contains { $0.contains("no key could ever be read") }, "\(found)")
        #expect(found.contains { $0.contains("keys[0].key: an API key has at least 16 characters") }, "\(found)")
        #expect(found.contains { $0.contains("rate_limit.consumer.rate: 0 is out of range") }, "\(found)")
        let empty = issues(Self.route("client_authentication: {}"))
        #expect(empty.contains { $0.contains("enables no method") }, "\(empty)")
        let consumerWithoutAuthentication = issues(Self.route("rate_limit: {consumer: {rate: 5}}"))
        #expect(consumerWithoutAuthentication.contains { $0.contains("needs client_authentication") }, "\(consumerWithoutAuthentication)")
    }

    func temporaryKeyFile(_ text: String) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-key-\(UUID().uuidString)")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }
}

@Suite struct PasswordHashAuthTests {
    @Test func libxcryptVerifiesHashesPythonMade() throws {
        let hash = try PasswordHash(parsing: ClientAuthenticationConfigurationTests.bcryptHash)
        #expect(hash.verify(Array("correct horse battery".utf8)))
        #expect(!hash.verify(Array("correct horse batterY".utf8)))
        #expect(!hash.verify(Array("correct horse battery\u{0}tail".utf8)), "a NUL byte would cut the password for crypt")
        let twoA = try PasswordHash(parsing: "$2a$04$1WxVfQwhRYkK66DUwigwiOyrykziMaRw2Yfj29ILNgJ6kt4.ztKZe")
        #expect(twoA.verify(Array("correct horse battery".utf8)))
    }

    /// Made once with Python's argon2-cffi 25.1.0 (`PasswordHasher(time_cost=2, memory_cost=1024, parallelism=2, type=...)
    /// .hash("correct horse battery")`, and its defaults, m=64 MiB, t=3, p=4): libargon2 must verify what it made.
    static let argon2Hashes = [
        "$argon2id$v=19$m=1024,t=2,p=2$lV8NFXPv2rRsguIVXLRKNg$lekIxmTcDqtwt5OmH+yTFSFycIy3b6dbDrs8fVn7M6I",
        "$argon2i$v=19$m=1024,t=2,p=2$9UHUNYI6bVLbZeRfQyfnzQ$MrKkWjBaasMkpzMUGjY75+YkKSndB21Bye0GdhaNy9s",
        "$argon2d$v=19$m=1024,t=2,p=2$DB3W6bFsG4WBZuBVaIgHUA$o6kB0n15qC/q9np5fApUTiJKpP/kkouv1kuDJ8Vwogk",
        "$argon2id$v=19$m=65536,t=3,p=4$nW+R5+squKt93g2Zai/d2Q$WZEr3GEVtrS9TTm0MGZO1Zj05WpmfRJR9o3bhAH8dMk",
    ]

    @Test func libargon2VerifiesHashesPythonMade() throws {
        let schemes: [PasswordHash.Scheme] = [.argon2id, .argon2i, .argon2d, .argon2id]
        for (text, scheme) in zip(Self.argon2Hashes, schemes) {
            let hash = try PasswordHash(parsing: text)
            #expect(hash.scheme == scheme)
            #expect(hash.verify(Array("correct horse battery".utf8)), "\(hash)")
            #expect(!hash.verify(Array("correct horse batterY".utf8)), "\(hash)")
            #expect(!hash.verify(Array("correct horse battery\u{0}tail".utf8)))
        }
        #expect(try PasswordHash(parsing: Self.argon2Hashes[3]).description == "argon2id (m=65536 KiB, t=3, p=4)")
        // The hash part altered: read, but no password matches it; the salt cut short: refused at start-up.
        let altered = try PasswordHash(parsing: Self.argon2Hashes[0].replacingOccurrences(of: "$lekIx", with: "$mekIx"))
        #expect(!altered.verify(Array("correct horse battery".utf8)))
        #expect(throws: PasswordHashError.self) {
            try PasswordHash(parsing: "$argon2id$v=19$m=1024,t=2,p=2$lV8N$lekIxmTcDqtwt5OmH+yTFSFycIy3b6dbDrs8fVn7M6I")
        }
    }

    @Test func argon2HashesAreMadeAndVerified() throws {
        let hash = try PasswordHash.make(password: "s3cret", scheme: .argon2id)
        #expect(hash.scheme == .argon2id)
        #expect(hash.description == "argon2id (m=65536 KiB, t=3, p=4)")
        #expect(hash.verify(Array("s3cret".utf8)))
        #expect(!hash.verify(Array("s3creT".utf8)))
    }

    @Test func yescryptHashesAreMadeAndVerified() throws {
        let hash = try PasswordHash.make(password: "s3cret", scheme: .yescrypt)
        #expect(hash.scheme == .yescrypt)
        #expect(hash.verify(Array("s3cret".utf8)))
        #expect(!hash.verify(Array("s3creT".utf8)))
    }
}

@Suite struct RateLimitBucketTests {
    @Test func aBucketRefillsAtItsRateUpToItsBurst() {
        let limiter = RateLimiter(settings: {
            var settings = RateLimitSettings()
            settings.route = RateLimitSettings.Limit(rate: 2, period: .seconds(1), burst: 3)
            return settings
        }(), now: 0)
        let second: UInt64 = 1_000_000_000
        #expect(limiter.admit(consumer: nil, now: 0)?.remaining == 2)
        #expect(limiter.admit(consumer: nil, now: 0)?.remaining == 1)
        #expect(limiter.admit(consumer: nil, now: 0)?.remaining == 0)
        let refused = limiter.admit(consumer: nil, now: 0)
        #expect(refused?.refusedBy == .route)
        #expect(refused?.retryAfter == 1)
        #expect(refused?.reset == 2)
        #expect(limiter.admit(consumer: nil, now: second / 2)?.refusedBy == nil)
        // Ten idle seconds earn no more than the burst.
        #expect(limiter.admit(consumer: nil, now: 11 * second)?.remaining == 2)
    }

    @Test func consumerBucketsAreBounded() {
        var settings = RateLimitSettings()
        settings.consumer = RateLimitSettings.Limit(rate: 1, period: .seconds(3600))
        settings.maxConsumers = 100
        let limiter = RateLimiter(settings: settings, now: 0)
        for index in 0..<10_000 {
            #expect(limiter.admit(consumer: "consumer-\(index)", now: UInt64(index))?.refusedBy == nil)
        }
        #expect(limiter.trackedConsumers <= 100)
        // The most recent consumer is still tracked (and limited).
        #expect(limiter.admit(consumer: "consumer-9999", now: 10_000)?.refusedBy == .consumer)
    }

    /// A new consumer every 10 ms against one token a second: each time the bound is reached one bucket (a second old)
    /// is full again. Dropping only that one would make every new consumer pay a pass over all of them.
    @Test func evictionsStayAmortisedWhenFewBucketsAreFull() {
        var settings = RateLimitSettings()
        settings.consumer = RateLimitSettings.Limit(rate: 1, period: .seconds(1))
        settings.maxConsumers = 100
        let limiter = RateLimiter(settings: settings, now: 0)
        let tenMilliseconds: UInt64 = 10_000_000
        for index in 0..<10_000 {
            _ = limiter.admit(consumer: "consumer-\(index)", now: UInt64(index + 1) * tenMilliseconds)
        }
        #expect(limiter.trackedConsumers <= 100)
        #expect(limiter.evictions <= 10_000 / 50 + 1, "\(limiter.evictions) passes over the buckets for 10,000 new consumers")
    }
}

@Suite struct VerifiedCredentialCacheAuthTests {
    @Test func entriesExpireAndTheCacheStaysWithinItsCapacity() {
        let cache = VerifiedCredentialCache(capacity: 3, timeToLive: .seconds(60))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let digests = (0..<10).map { SHA256.hash(data: Array("user-\($0):password".utf8)) }
        cache.insert(digests[0], consumer: "a", now: start)
        #expect(cache.contains(digests[0], consumer: "a", now: start + .seconds(59)))
        #expect(!cache.contains(digests[0], consumer: "b", now: start + .seconds(1)), "another consumer's entry never matches")
        cache.insert(digests[1], consumer: "a", now: start)
        #expect(!cache.contains(digests[1], consumer: "a", now: start + .seconds(61)), "expired")
        for (index, digest) in digests.enumerated() { cache.insert(digest, consumer: "c", now: start + .seconds(Int64(index))) }
        #expect(cache.count <= 3)
        #expect(cache.contains(digests[9], consumer: "c", now: start + .seconds(10)))
    }
}
