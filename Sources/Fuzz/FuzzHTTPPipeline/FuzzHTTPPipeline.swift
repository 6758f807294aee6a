import Foundation
import FuzzSupport
import Kafka
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1

@testable import Bridge

/// Fuzzes the HTTP ingest pipeline with raw bytes from a client: NIO's HTTP/1.1 decoder, pipelining and error
/// handling, then `HTTPIngestHandler` with its routing, body limits, Kong encoding and producing, as
/// `HTTPIngestServer` installs them, on an `EmbeddedChannel`. Input layout: `<chunk byte><bytes from the client>`;
/// the bytes arrive in pieces of `chunk byte + 1` bytes (0: all at once), to exercise partial reads.
///
/// The routes are async (answered once the message is queued), on a producer of an in-process mock cluster
/// whose queue holds one message for a minute: after the first message every produce is refused with 503,
/// so memory stays bounded however many requests pass, and nothing completes on another thread.
///
/// Invariants: no crash, no hang, the answers are well-formed HTTP/1.x responses.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPPipeline(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard var input = FuzzInput(data, size) else { return 0 }
    let whole = input.remaining
    let chunkSize = Int(input.byte())
    let fixture = pipelineFixture
    let channel = EmbeddedChannel()
    do {
        try fixture.pipeline.install(on: channel)
        // Active, as an accepted connection is.
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
    } catch {
        preconditionFailure("cannot set up the pipeline: \(error)")
    }
    var rest = input.remaining
    while !rest.isEmpty, channel.isActive {
        let count = chunkSize == 0 ? rest.count : min(chunkSize + 1, rest.count)
        let chunk = channel.allocator.buffer(bytes: UnsafeRawBufferPointer(rebasing: rest[..<count]))
        rest = UnsafeRawBufferPointer(rebasing: rest[count...])
        do { try channel.writeInbound(chunk) } catch { break }
    }
    var output = channel.allocator.buffer(capacity: 0)
    while let part = try? channel.readOutbound(as: IOData.self) {
        if case .byteBuffer(var buffer) = part { output.writeBuffer(&buffer) }
    }
    _ = try? channel.finish()
    // A channel the server closed tears its pipeline down in a task on the loop: run it, or the channel leaks.
    channel.embeddedEventLoop.run()
    checkResponses(output, input: whole)
    return 0
}

/// Every byte the server wrote must be a sequence of whole HTTP/1.x responses, each with a status line, headers and
/// exactly `Content-Length` bytes of body (kbridge and NIO's error handler always send one, except for 1xx), or
/// none when answering a HEAD request.
private func checkResponses(_ output: ByteBuffer, input: UnsafeRawBufferPointer) {
    let bytes = Array(output.readableBytesView)
    var position = 0
    func fail(_ reason: String) -> Never {
        fuzzFailure("the server's answer is not HTTP (\(reason) at byte \(position)): \(String(buffer: output).debugDescription)", input: input)
    }
    let headerEnd: [UInt8] = Array("\r\n\r\n".utf8)
    while position < bytes.count {
        guard bytes[position...].starts(with: "HTTP/1.".utf8) else { fail("no status line") }
        guard let end = (position..<bytes.count).first(where: { bytes[$0...].starts(with: headerEnd) }) else { fail("no end of headers") }
        let head = String(decoding: bytes[position..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines[0].split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, let status = Int(statusLine[1]), (100...599).contains(status) else { fail("bad status line") }
        var length: Int?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { fail("header line without ':'") }
            if line[..<colon].lowercased() == "content-length" {
                guard length == nil, let value = Int(line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)) else {
                    fail("bad or repeated content-length")
                }
                length = value
            }
        }
        position = end + headerEnd.count
        if status < 200 { continue }
        guard let length else { fail("no content-length") }
        // The answer to a HEAD request has the headers of the GET answer but no body (NIO's encoder drops it).
        let answersHead = input.firstRange(of: "HEAD".utf8) != nil
            && (position == bytes.count || bytes[position...].starts(with: "HTTP/1.".utf8))
        if answersHead { continue }
        guard position + length <= bytes.count else { fail("body shorter than its content-length") }
        position += length
    }
}

/// The connection pipeline (the server's, with the default `server:` limits), producer and mock cluster shared by
/// every input.
struct PipelineFixture: Sendable {
    let cluster: KafkaMockCluster
    let producer: KafkaProducer
    let pipeline: ConnectionPipeline
}

let pipelineFixture: PipelineFixture = {
    let logger = Logger(label: "fuzz") { _ in SwiftLogNoOpLogHandler() }
    do {
        let cluster = try KafkaMockCluster()
        for topic in ["clicks", "views", "orders"] { try cluster.createTopic(topic, partitions: 1) }
        let producer = try KafkaProducer(properties: [
            "bootstrap.servers": cluster.bootstrapServers,
            "queue.buffering.max.messages": "1",
            "linger.ms": "60000",
        ], logger: logger)
        let kafka = KafkaSettings(bootstrapServers: [])
        var events = RouteConfiguration(path: "/events/{topic}", topic: nil, kafka: kafka, name: "events")
        events.allowedTopics = ["clicks", "views"]
        events.keyQueryArgument = "key"
        events.fields.headers = true
        var orders = RouteConfiguration(path: "/orders", topic: "orders", kafka: kafka, name: "orders")
        orders.methods = ["POST", "PUT"]
        orders.topicsQueryArgument = "topics"
        orders.maxBodySize = 4096
        orders.fields.method = true
        orders.fields.uri = true
        orders.fields.headers = true
        var keyed = RouteConfiguration(path: "/k/{topic}/{key}", topic: nil, kafka: kafka, name: "keyed")
        keyed.methods = ["PUT"]
        keyed.fields.body = false
        keyed.fields.uri = true
        let routes = [events, orders, keyed]
        let ingestors = try routes.map { route in
            RouteIngestor(route: route, pattern: try RoutePattern(parsing: route.path), producer: producer)
        }
        let observability = Observability(
            producers: [.init(name: cluster.bootstrapServers, producer: producer)],
            routes: ingestors.map { ($0.route.name, $0.responses) })
        let live = LiveRoutes(RouteGeneration(number: 1, routes: RouteTable(ingestors), observability: observability))
        let pipeline = ConnectionPipeline(configuration: ServerConfiguration(), live: live, logger: logger)
        return PipelineFixture(cluster: cluster, producer: producer, pipeline: pipeline)
    } catch {
        preconditionFailure("cannot set up the fuzz fixture: \(error)")
    }
}()

@main enum FuzzHTTPPipelineMain {
    static func main() { FuzzDriver.run(fuzzHTTPPipeline) }
}
