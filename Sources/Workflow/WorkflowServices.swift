import Callout
import NIOPosix
import Redis
import Synchronization

/// What running workflows share in a process: the HTTP client(s) of `call` nodes, the Redis client(s) of `cache`
/// nodes and the threads jq runs on.
/// Created once by the bridge and shut down when it stops.
public final class WorkflowServices: Sendable {
    /// jq programs run here, off the event loops.
    public let jqThreadPool: NIOThreadPool
    private let calloutConfiguration: CalloutClient.Configuration
    /// One pooled client per distinct set of extra CA files (most workflows share the one without).
    private let clients = Mutex<[[String]: CalloutClient]>([:])
    /// One Redis client per distinct server configuration (`cache` nodes with `strategy: redis`).
    let redisClients = Mutex<[RedisConfiguration: RedisClient]>([:])

    public init(jqThreads: Int = 2, calloutConfiguration: CalloutClient.Configuration = CalloutClient.Configuration()) {
        jqThreadPool = NIOThreadPool(numberOfThreads: max(1, jqThreads))
        jqThreadPool.start()
        self.calloutConfiguration = calloutConfiguration
    }

    /// The client for calls that trust `caCertificateFiles` besides the system roots (created on first use).
    func calloutClient(caCertificateFiles: [String]) throws(CalloutError) -> CalloutClient {
        let key = caCertificateFiles.sorted()
        let result: Result<CalloutClient, CalloutError> = clients.withLock { clients in
            if let existing = clients[key] { return .success(existing) }
            var configuration = calloutConfiguration
            configuration.caCertificateFiles = key
            do throws(CalloutError) {
                let client = try CalloutClient(configuration: configuration)
                clients[key] = client
                return .success(client)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Closes the HTTP clients and stops the jq threads (a jq program that never ends is not waited for).
    public func shutdown() async {
        let all = clients.withLock { clients in
            defer { clients = [:] }
            return Array(clients.values)
        }
        for client in all { try? await client.shutdown() }
        let redis = redisClients.withLock { clients in
            defer { clients = [:] }
            return Array(clients.values)
        }
        for client in redis { await client.shutdown() }
        jqThreadPool.shutdownGracefully { _ in }
    }
}
