import Foundation
import TestSupport
import Logging
import NIOCore
import NIOPosix
import Redis
import Synchronization
import Testing

/// The test servers scripts/test starts (scripts/redis-server): plain, password/ACL, TLS.
enum TestRedis {
    struct Missing: Error, CustomStringConvertible {
        var name: String
        var description: String { "\(name) is not set: run the tests with scripts/test (it starts the Redis servers)" }
    }

    static func environment(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { throw Missing(name: name) }
        return value
    }

    static func port(_ name: String) throws -> Int {
        guard let port = Int(try environment(name)) else { throw Missing(name: name) }
        return port
    }

    static func configuration(port: Int, readTimeout: Duration = .seconds(10)) -> RedisConfiguration {
        var configuration = RedisConfiguration(host: "127.0.0.1", port: port)
        configuration.connectTimeout = .seconds(10)
        configuration.sendTimeout = .seconds(10)
        configuration.readTimeout = readTimeout
        configuration.poolSize = 4
        return configuration
    }

    static func client(_ configuration: RedisConfiguration) throws -> RedisClient {
        try RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "redis-tests"))
    }

    static func uniqueKey(_ prefix: String = "k") -> String { "kbridge-test:\(prefix):\(UUID().uuidString)" }
}

/// Runs `body` on a new thread (never on a cooperative one) and awaits its result.
func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
        thread.start()
    }
}

/// A redis-server of the test's own, on a free loopback port, that the test may kill and start again.
final class OwnRedisServer: Sendable {
    let port: Int
    let directory: String
    private let process = Mutex<Process?>(nil)

    init() async throws {
        port = try unusedLoopbackPort()  // the server is restarted on it
        directory = NSTemporaryDirectory() + "kbridge-redis-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try await start()
    }

    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
                             "--daemonize", "no", "--protected-mode", "no", "--logfile", directory + "/redis.log"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try launch(process)
        self.process.withLock { $0 = process }
        // Ready when it answers PING.
        let client = try TestRedis.client(TestRedis.configuration(port: port, readTimeout: .seconds(5)))
        defer { Task { await client.shutdown() } }
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            do throws(RedisError) {
                try await client.ping()
                return
            } catch {
                if ContinuousClock.now > deadline { throw error }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// SIGKILL, then waits for the process to be gone (on a dedicated thread).
    func kill() async throws {
        guard let process = self.process.withLock({ current in defer { current = nil }; return current }) else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        try await onDedicatedThread { process.waitUntilExit() }
    }

    func stop() async {
        try? await kill()
        try? FileManager.default.removeItem(atPath: directory)
    }
}


/// A TCP server that pretends to be Redis: it reads a command and answers with `reply` (or never, when `nil`).
/// `replies` gives each connection, in the order they arrive, its own answer (the last one for the rest); an answer
/// is sent in `pieces` writes 20 ms apart.
final class FakeRedisServer: Sendable {
    let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }

    convenience init(reply: [UInt8]?) async throws {
        try await self.init(replies: [reply])
    }

    init(replies: [[UInt8]?], pieces: Int = 1) async throws {
        let counter = Counter()
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                let index = counter.next()
                let reply = replies[min(index, replies.count - 1)]
                return child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(CannedReplyHandler(reply: reply, pieces: pieces))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        counterBox = counter
    }

    private let counterBox: Counter
    var acceptedConnections: Int { counterBox.count }

    final class Counter: Sendable {
        private let value = Mutex(0)
        func next() -> Int {
            value.withLock { count in
                defer { count += 1 }
                return count
            }
        }
        var count: Int { value.withLock { $0 } }
    }

    func shutdown() async { try? await channel.close() }

    final class CannedReplyHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let reply: [UInt8]?
        let pieces: Int
        init(reply: [UInt8]?, pieces: Int) {
            self.reply = reply
            self.pieces = pieces
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard let reply else { return }
            let size = max(1, (reply.count + pieces - 1) / pieces)
            let channel = context.channel
            for (position, start) in stride(from: 0, to: reply.count, by: size).enumerated() {
                let piece = channel.allocator.buffer(bytes: reply[start..<min(reply.count, start + size)])
                channel.eventLoop.scheduleTask(in: .milliseconds(20 * Int64(position))) { channel.writeAndFlush(piece, promise: nil) }
            }
        }
    }
}
