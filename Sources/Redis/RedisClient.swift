import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A small Redis client on SwiftNIO: RESP2, `PING`, `AUTH`, `SELECT`, `GET`, `SET … EX`, a bounded connection
/// pool, connect/send/read timeouts and TLS.
///
/// Hand-written: the Swift package mirror kbridge builds from has no Redis package (RediStack and others are not
/// in it), and kbridge needs only these few commands. Every reply is decoded by ``RESPDecoder`` within
/// ``RESPLimits``; a connection on which anything went wrong (timeout, protocol error, close) is closed and never
/// reused. Nothing here blocks an event loop or a task's thread: every wait is an `await` on a NIO future.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let tlsContext: NIOSSLContext?
    private let pool: RedisConnectionPool
    /// `host:port` for messages.
    public let endpoint: String

    /// - Throws: ``RedisError`` (`invalidArgument` or `tls`) when the configuration cannot work (a pool size out of
    ///   range, a CA file that cannot be read).
    public init(configuration: RedisConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger) throws(RedisError) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        endpoint = "\(configuration.host):\(configuration.port)"
        guard (1...RedisConfiguration.maximumPoolSize).contains(configuration.poolSize) else {
            throw RedisError(.invalidArgument, "redis \(endpoint): pool size \(configuration.poolSize) is out of range 1 to \(RedisConfiguration.maximumPoolSize)")
        }
        guard (1...65535).contains(configuration.port) else {
            throw RedisError(.invalidArgument, "redis: port \(configuration.port) is out of range 1 to 65535")
        }
        if configuration.tls {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = configuration.tlsVerify ? .fullVerification : .none
            tls.additionalTrustRoots = configuration.caCertificateFiles.map { .file($0) }
            do {
                tlsContext = try NIOSSLContext(configuration: tls)
            } catch {
                throw RedisError(.tls, "redis \(endpoint): cannot set up TLS: \(error)")
            }
        } else {
            tlsContext = nil
        }
        pool = RedisConnectionPool(size: configuration.poolSize)
    }

    // MARK: - Commands

    /// `PING`: `PONG` back means the server is there (and the connection's AUTH/SELECT worked).
    public func ping() async throws(RedisError) {
        let reply = try await command(["PING"].map { Array($0.utf8) }, name: "PING")
        guard case .simpleString("PONG") = reply else { throw unexpected(reply, to: "PING") }
    }

    /// `GET key`: the value, or `nil` when there is none.
    public func get(_ key: String) async throws(RedisError) -> [UInt8]? {
        try checkKey(key)
        let reply = try await command([Array("GET".utf8), Array(key.utf8)], name: "GET")
        guard case .bulkString(let value) = reply else { throw unexpected(reply, to: "GET") }
        return value
    }

    /// `SET key value EX seconds` (`expiresInSeconds` ≥ 1), or `SET key value` without expiry when `nil`.
    public func set(_ key: String, value: [UInt8], expiresInSeconds: Int?) async throws(RedisError) {
        try checkKey(key)
        guard value.count <= configuration.limits.maximumBulkLength else {
            throw RedisError(.invalidArgument, "redis \(endpoint): a value of \(value.count) bytes is larger than the limit of \(configuration.limits.maximumBulkLength)")
        }
        var arguments = [Array("SET".utf8), Array(key.utf8), value]
        if let seconds = expiresInSeconds {
            guard seconds >= 1 else { throw RedisError(.invalidArgument, "redis \(endpoint): an expiry must be at least 1 second, got \(seconds)") }
            arguments += [Array("EX".utf8), Array(String(seconds).utf8)]
        }
        let reply = try await command(arguments, name: "SET")
        guard case .simpleString("OK") = reply else { throw unexpected(reply, to: "SET") }
    }

    /// Closes every pooled connection; commands after this fail with `shutdown`.
    public func shutdown() async {
        for connection in pool.shutdown() { connection.close() }
    }

    /// Sends one command on a pooled connection. An error reply is thrown as `server`. A connection taken from the
    /// pool that turns out to be closed (the server restarted, or closed it while idle) is dropped and the command is
    /// sent once more on a new connection (every command here may be repeated).
    func command(_ arguments: [[UInt8]], name: String) async throws(RedisError) -> RESPValue {
        var attempt = 0
        while true {
            attempt += 1
            let lease = await pool.acquire(wait: configuration.connectTimeout, endpoint: endpoint)
            let connection: RedisConnection
            let reused: Bool
            switch lease {
            case .failure(let error): throw error
            case .success(.connection(let pooled)):
                connection = pooled
                reused = true
            case .success(.slot):
                do throws(RedisError) {
                    connection = try await connect()
                } catch {
                    pool.slotFreed()
                    throw error
                }
                reused = false
            }
            let reply: RESPValue
            do throws(RedisError) {
                reply = try await connection.send(arguments, name: name, sendTimeout: configuration.sendTimeout, readTimeout: configuration.readTimeout)
            } catch {
                pool.release(connection)
                if reused, attempt == 1, error.kind == .connectionClosed {
                    logger.debug("redis: a pooled connection was closed; retrying on a new one", metadata: ["endpoint": "\(endpoint)"])
                    continue
                }
                throw error
            }
            pool.release(connection)
            if case .error(let message) = reply { throw RedisError(.server, "redis \(endpoint): \(name) failed: \(message)") }
            return reply
        }
    }

    // MARK: - Connections

    private func connect() async throws(RedisError) -> RedisConnection {
        let endpoint = endpoint
        let limits = configuration.limits
        let tlsContext = tlsContext
        let serverName = configuration.serverName ?? (Self.isIPAddress(configuration.host) ? nil : configuration.host)
        let eventLoop = eventLoopGroup.next()
        let handshake = tlsContext == nil ? nil : eventLoop.makePromise(of: Void.self)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(RedisConnection.timeAmount(configuration.connectTimeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tlsContext, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(RedisChannelHandler(limits: limits, endpoint: endpoint, handshake: handshake))
                }
            }
        // Cancelling the task (the workflow's deadline) stops the wait at once; a connection made after that is closed.
        let connecting = bootstrap.connect(host: configuration.host, port: configuration.port)
        let connected = connecting.eventLoop.makePromise(of: (any Channel).self)
        connecting.cascade(to: connected)
        connected.futureResult.whenFailure { _ in connecting.whenSuccess { $0.close(promise: nil) } }
        let channel: any Channel
        do {
            channel = try await withTaskCancellationHandler {
                try await connected.futureResult.get()
            } onCancel: {
                connected.fail(RedisError(.timeout, "redis \(endpoint): connecting cancelled (the workflow's deadline passed)"))
            }
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError(.connect, "redis \(endpoint): cannot connect: \(Self.connectReason(error))")
        }
        let connection = RedisConnection(channel: channel, endpoint: endpoint)
        do throws(RedisError) {
            if let handshake {
                // TLS problems are reported as such, before any command; the handshake counts against connect_timeout.
                let timeout = eventLoop.scheduleTask(in: RedisConnection.timeAmount(configuration.connectTimeout)) {
                    handshake.fail(RedisError(.timeout, "redis \(endpoint): the TLS handshake took longer than the connect timeout"))
                }
                defer { timeout.cancel() }
                do {
                    try await withTaskCancellationHandler {
                        try await handshake.futureResult.get()
                    } onCancel: {
                        handshake.fail(RedisError(.timeout, "redis \(endpoint): the TLS handshake cancelled (the workflow's deadline passed)"))
                    }
                } catch {
                    throw RedisChannelHandler.describe(error, endpoint: endpoint, doing: "the TLS handshake")
                }
            }
            if let password = configuration.password {
                var arguments = [Array("AUTH".utf8)]
                if let username = configuration.username { arguments.append(Array(username.utf8)) }
                arguments.append(Array(password.utf8))
                let reply = try await connection.send(arguments, name: "AUTH", sendTimeout: configuration.sendTimeout, readTimeout: configuration.readTimeout)
                if case .error(let message) = reply {
                    throw RedisError(.authentication, "redis \(endpoint): AUTH\(configuration.username.map { " as '\($0)'" } ?? "") refused: \(message)")
                }
            }
            if configuration.database != 0 {
                let reply = try await connection.send([Array("SELECT".utf8), Array(String(configuration.database).utf8)], name: "SELECT",
                                                      sendTimeout: configuration.sendTimeout, readTimeout: configuration.readTimeout)
                if case .error(let message) = reply {
                    throw RedisError(.server, "redis \(endpoint): SELECT \(configuration.database) failed: \(message)")
                }
            }
        } catch {
            connection.close()
            throw error
        }
        logger.debug("redis: connected", metadata: ["endpoint": "\(endpoint)"])
        return connection
    }

    private func checkKey(_ key: String) throws(RedisError) {
        guard key.utf8.count <= RedisConfiguration.maximumKeyLength else {
            throw RedisError(.invalidArgument, "redis \(endpoint): a key of \(key.utf8.count) bytes is longer than \(RedisConfiguration.maximumKeyLength)")
        }
    }

    private func unexpected(_ reply: RESPValue, to name: String) -> RedisError {
        let shown: String = switch reply {
        case .simpleString(let text): "+\(text.prefix(40))"
        case .error(let text): "-\(text.prefix(40))"
        case .integer(let value): ":\(value)"
        case .bulkString(let bytes): bytes.map { "a bulk string of \($0.count) bytes" } ?? "a null bulk string"
        case .array(let values): values.map { "an array of \($0.count) values" } ?? "a null array"
        }
        return RedisError(.protocolViolation, "redis \(endpoint): unexpected reply to \(name): \(shown)")
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    static func connectReason(_ error: any Error) -> String {
        if let channel = error as? ChannelError, case .connectTimeout(let amount) = channel {
            return "timed out after \(amount.nanoseconds / 1_000_000) ms"
        }
        if let connection = error as? NIOConnectionError {
            if let first = connection.connectionErrors.first { return "\(first.error)" }
            if let dns = connection.dnsAError ?? connection.dnsAAAAError { return "cannot resolve \(connection.host): \(dns)" }
        }
        return "\(error)"
    }
}

/// The pool: at most `size` connections open; idle ones are reused most-recent first; a command that finds all busy
/// waits for one (or for a free slot) up to a bound. Taking an idle connection and giving it back are short critical
/// sections under a lock (no actor hop on the hot path); only a command that has to wait suspends.
final class RedisConnectionPool: Sendable {
    enum Lease: Sendable {
        case connection(RedisConnection)
        /// Room for a new connection, counted as open: the caller connects, or gives it back with ``slotFreed()``.
        case slot
    }

    private struct State {
        var idle: [RedisConnection] = []
        var open = 0
        var waiters: [(id: Int, continuation: CheckedContinuation<Result<Lease, RedisError>, Never>)] = []
        var nextWaiter = 0
        var isShutdown = false
    }

    private let size: Int
    private let state = Mutex(State())

    init(size: Int) {
        self.size = size
    }

    func acquire(wait: Duration, endpoint: String) async -> Result<Lease, RedisError> {
        enum Immediate { case lease(Result<Lease, RedisError>), wait(Int) }
        var stale: [RedisConnection] = []
        let immediate: Immediate = state.withLock { state in
            guard !state.isShutdown else { return .lease(.failure(RedisError(.shutdown, "redis \(endpoint): the client is shut down"))) }
            while let connection = state.idle.popLast() {
                if connection.isUsable { return .lease(.success(.connection(connection))) }
                stale.append(connection)
                state.open -= 1
            }
            if state.open < size {
                state.open += 1
                return .lease(.success(.slot))
            }
            defer { state.nextWaiter += 1 }
            return .wait(state.nextWaiter)
        }
        for connection in stale { connection.close() }
        let id: Int
        switch immediate {
        case .lease(let lease): return lease
        case .wait(let waiter): id = waiter
        }
        let poolSize = size
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let registered = state.withLock { state in
                    guard !state.isShutdown else { return false }
                    state.waiters.append((id, continuation))
                    return true
                }
                guard registered else {
                    continuation.resume(returning: .failure(RedisError(.shutdown, "redis \(endpoint): the client is shut down")))
                    return
                }
                Task {
                    try? await Task.sleep(for: wait)
                    self.expire(id, error: RedisError(.poolExhausted, "redis \(endpoint): all \(poolSize) connections stayed busy for \(wait)"))
                }
            }
        } onCancel: {
            self.expire(id, error: RedisError(.timeout, "redis \(endpoint): waiting for a connection cancelled"))
        }
    }

    /// Fails the waiter `id` if it is still waiting (its wait ran out, or its task was cancelled).
    private func expire(_ id: Int, error: RedisError) {
        let waiter = state.withLock { state -> CheckedContinuation<Result<Lease, RedisError>, Never>? in
            guard let position = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: position).continuation
        }
        waiter?.resume(returning: .failure(error))
    }

    /// Gives a connection back: kept for reuse if usable, else closed and its slot freed.
    func release(_ connection: RedisConnection) {
        guard connection.isUsable else {
            connection.close()
            slotFreed()
            return
        }
        let outcome = state.withLock { state -> (waiter: CheckedContinuation<Result<Lease, RedisError>, Never>?, close: Bool) in
            if state.isShutdown {
                state.open -= 1
                return (nil, true)
            }
            if !state.waiters.isEmpty { return (state.waiters.removeFirst().continuation, false) }
            state.idle.append(connection)
            return (nil, false)
        }
        if outcome.close { connection.close() }
        outcome.waiter?.resume(returning: .success(.connection(connection)))
    }

    /// A connection slot is free again: a waiter gets it, else the count goes down.
    func slotFreed() {
        let waiter = state.withLock { state -> CheckedContinuation<Result<Lease, RedisError>, Never>? in
            if !state.isShutdown, !state.waiters.isEmpty { return state.waiters.removeFirst().continuation }
            state.open -= 1
            return nil
        }
        waiter?.resume(returning: .success(.slot))
    }

    /// Stops the pool: waiters fail, and the idle connections are returned to be closed.
    func shutdown() -> [RedisConnection] {
        let (waiters, idle) = state.withLock { state in
            state.isShutdown = true
            defer {
                state.waiters = []
                state.idle = []
            }
            return (state.waiters.map(\.continuation), state.idle)
        }
        for waiter in waiters { waiter.resume(returning: .failure(RedisError(.shutdown, "redis: the client is shut down"))) }
        return idle
    }
}
