import Kafka
import Logging
import NIOHTTP1
import Testing

@testable import Bridge

@Suite struct RouteTableTests {
    /// Ingestors need a producer; one on the in-process mock cluster is enough (nothing is sent here).
    static let cluster = try! KafkaMockCluster()

    func table(_ routes: [(String, [String])]) throws -> RouteTable {
        let producer = try KafkaProducer(properties: ["bootstrap.servers": Self.cluster.bootstrapServers], logger: .init(label: "test"))
        return RouteTable(try routes.map { path, methods in
            var route = RouteConfiguration(path: path, topic: "t", kafka: KafkaSettings(bootstrapServers: []))
            route.methods = methods
            return RouteIngestor(route: route, pattern: try RoutePattern(parsing: path), producer: producer)
        })
    }

    @Test func exactPathsWinOverParametersAndParametersAreDecoded() throws {
        let routes = try table([("/{topic}", ["POST"]), ("/health", ["POST"]), ("/k/{topic}/{key}", ["PUT"])])
        guard case .found(let exact) = routes.lookup(method: .POST, path: "/health") else { Issue.record("no match"); return }
        #expect(exact.ingestor.route.path == "/health" && exact.topic == nil)
        guard case .found(let parameter) = routes.lookup(method: .POST, path: "/orders/") else { Issue.record("no match"); return }
        #expect(parameter.topic == "orders")
        guard case .found(let keyed) = routes.lookup(method: .PUT, path: "/k/t1/a%20b") else { Issue.record("no match"); return }
        #expect(keyed.topic == "t1" && keyed.key == "a b")
    }

    @Test func unknownPathsAndWrongMethods() throws {
        let routes = try table([("/a", ["POST", "PUT"]), ("/{topic}", ["POST"])])
        guard case .notFound = routes.lookup(method: .POST, path: "/a/b/c") else { Issue.record("expected 404"); return }
        guard case .methodNotAllowed(let allowed) = routes.lookup(method: .GET, path: "/a") else { Issue.record("expected 405"); return }
        #expect(allowed == ["POST", "PUT"])
        guard case .found = routes.lookup(method: .PUT, path: "/a") else { Issue.record("expected a match"); return }
    }

    @Test func normalPathsAreRecognisedByTheirBytes() {
        for path in ["/", "/a", "/a/b", "/a-b/c.d", "/é/x"] { #expect(RouteTable.isNormal(Substring(path)), "\(path)") }
        for path in ["", "a", "//", "/a/", "/a//b", "//a", "a/b", "/a/b/"] { #expect(!RouteTable.isNormal(Substring(path)), "\(path)") }
    }
}
