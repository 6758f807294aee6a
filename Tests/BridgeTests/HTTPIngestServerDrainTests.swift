import Kafka
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import Bridge

/// A drain that runs out of time closes the connections still open itself, before the event loops stop (else they
/// would be closed by the event loop group's shutdown, which SwiftNIO warns about and will turn into a crash).
@Suite struct HTTPIngestServerDrainTests {
    @Test func aDrainThatTimesOutClosesTheConnectionsLeft() async throws {
        let cluster = try KafkaMockCluster()
        let producer = try KafkaProducer(properties: ["bootstrap.servers": cluster.bootstrapServers], logger: Logger(label: "test"))
        let route = RouteConfiguration(path: "/in", topic: "t", kafka: KafkaSettings(bootstrapServers: []))
        let ingestor = RouteIngestor(route: route, pattern: try RoutePattern(parsing: "/in"), producer: producer)
        let observability = Observability(producers: [], routes: [(route.name, ingestor.responses)])
        let live = LiveRoutes(RouteGeneration(number: 1, routes: RouteTable([ingestor]), observability: observability))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var configuration = ServerConfiguration()
        (configuration.host, configuration.port) = ("127.0.0.1", 0)
        let server = try await HTTPIngestServer.bind(configuration: configuration, group: group, live: live, logger: Logger(label: "test"))
        let port = try #require(server.localAddress?.port)

        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        // Half a body: the request stays in progress, so the drain waits for it.
        try await client.writeAndFlush(ByteBuffer(string: "POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")).get()
        try await Task.sleep(for: .milliseconds(200))
        #expect(await server.quiesce(timeout: .milliseconds(300)) == false)

        // The server closed the connection, with its event loops still running.
        let closed = await withTaskGroup(of: Bool.self) { tasks in
            tasks.addTask { (try? await client.closeFuture.get()) != nil }
            tasks.addTask {
                try? await Task.sleep(for: .seconds(20))
                client.close(promise: nil)
                return false
            }
            let first = await tasks.next() ?? false
            tasks.cancelAll()
            return first
        }
        #expect(closed, "the connection was still open after the drain's timeout")
        try await group.shutdownGracefully()
        await producer.close(flushTimeout: .zero)
    }
}
