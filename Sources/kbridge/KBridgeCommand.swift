import ArgumentParser
import Bridge
import Foundation
import Kafka
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

@main
struct KBridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kbridge",
        abstract: "An HTTP to Kafka ingestion bridge: HTTP requests become Kafka messages in Kong kafka-upstream's format.",
        subcommands: [Run.self, Check.self, Consume.self, ImportKong.self],
        defaultSubcommand: Run.self)
}

/// Exit code for an unusable configuration (sysexits' EX_CONFIG).
let configurationErrorExitCode: Int32 = 78

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the bridge. Without a configuration file, serve POST /{topic} into an embedded in-process Kafka cluster.")

    @Argument(help: "The YAML configuration file. Omit it to run on the embedded Kafka cluster.")
    var config: String?

    @Option(help: "Override server.host.")
    var host: String?

    @Option(help: "Override server.port (0 picks a free port).")
    var port: Int?

    func run() async throws {
        var embeddedCluster: KafkaMockCluster?
        var configuration: BridgeConfiguration
        var warnings: [String] = []
        if let config {
            do {
                let loaded = try BridgeConfiguration.load(file: config)
                configuration = loaded.configuration
                warnings = loaded.warnings.map { "\($0)" }
            } catch {
                printError("kbridge: invalid configuration\n\(error)")
                throw ExitCode(configurationErrorExitCode)
            }
        } else {
            configuration = BridgeConfiguration()
        }
        // The log format is the configuration's, so the handler is chosen once it is read.
        LoggingSystem.bootstrap(configuration.logFormat.makeHandler)
        var logger = Logger(label: "kbridge")
        for warning in warnings { logger.warning("configuration: \(warning)") }
        if config == nil {
            let cluster = try KafkaMockCluster(brokers: 1)
            embeddedCluster = cluster
            configuration = .embedded(bootstrapServers: cluster.bootstrapServers)
        }
        if let host { configuration.server.host = host }
        if let port { configuration.server.port = port }
        logger.logLevel = configuration.logLevel

        // SIGHUP re-reads server.tls's files; trapped before the listener opens, so that an early one cannot kill kbridge.
        let hangups = configuration.server.tls == nil ? nil : await UnixSignalsSequence(trapping: .sighup)
        let bridge: KafkaBridge
        do {
            bridge = try await KafkaBridge.start(configuration: configuration, logger: logger)
        } catch let error as KafkaError {
            printError("kbridge: cannot start: \(error.message)")
            throw ExitCode(configurationErrorExitCode)
        } catch let error as IOError {
            printError("kbridge: cannot listen on \(configuration.server.host):\(configuration.server.port): \(error)")
            throw ExitCode(1)
        } catch {
            printError("kbridge: cannot start: \(error)")
            throw ExitCode(1)
        }
        if let embeddedCluster {
            // Written unbuffered: the banner must reach a pipe or a file at once.
            FileHandle.standardOutput.write(Data("""
                kbridge is listening on http://\(configuration.server.host == "0.0.0.0" ? "127.0.0.1" : configuration.server.host):\(bridge.port)
                Embedded Kafka cluster (in memory, gone when kbridge stops): \(embeddedCluster.bootstrapServers)

                  Post an event:   curl -d '{"hello":"kafka"}' -H 'content-type: application/json' http://127.0.0.1:\(bridge.port)/events
                  Read it back:    kbridge consume --bootstrap-servers \(embeddedCluster.bootstrapServers) --topic events
                                   (or any Kafka client: kcat -b \(embeddedCluster.bootstrapServers) -C -t events)

                """.utf8))
        }
        let group = ServiceGroup(configuration: .init(
            services: [bridge], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        // SIGHUP: re-read server.tls's certificate, key and CA files (for new connections).
        let reloads = hangups.map { hangups in Task { [logger] in
            for await _ in hangups {
                do {
                    try bridge.reloadCertificates()
                } catch {
                    logger.error("SIGHUP: the certificates were not reloaded; the ones in use stay", metadata: ["error": "\(error)"])
                }
            }
        } }
        defer { reloads?.cancel() }
        try await group.run()
        withExtendedLifetime(embeddedCluster) {}
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a configuration file without starting anything; print every problem with its line and key.")

    @Argument(help: "The YAML configuration file.")
    var config: String

    func run() throws {
        do {
            let loaded = try BridgeConfiguration.load(file: config)
            for warning in loaded.warnings { print("warning: \(warning)") }
            let routes = loaded.configuration.routes
            print("\(config): OK (\(routes.count) route\(routes.count == 1 ? "" : "s"))")
            for route in routes {
                let workflow = route.workflow.map { ", \($0.summary)" } ?? ""
                print("  \(route.methods.joined(separator: ",")) \(route.path) -> \(route.topic ?? "{topic}") (\(route.kafka.async ? "async" : "sync")\(workflow))")
            }
        } catch {
            printError("\(error)")
            throw ExitCode(configurationErrorExitCode)
        }
    }
}

struct Consume: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the messages of a topic, from the beginning, one per line (value, or key<TAB>value with --keys).")

    @Option(name: [.short, .customLong("bootstrap-servers")], help: "host:port[,host:port...]")
    var bootstrapServers: String

    @Option(name: .shortAndLong, help: "The topic to read.")
    var topic: String

    @Option(help: "Wait until at least this many messages were read.")
    var count = 0

    @Option(help: "Give up waiting after this many seconds.")
    var timeout = 10.0

    @Flag(help: "Print the key before each value, separated by a tab.")
    var keys = false

    @Flag(help: "Print only the number of messages.")
    var countOnly = false

    func run() throws {
        let reader = try KafkaTopicReader(properties: ["bootstrap.servers": bootstrapServers])
        let messages = try reader.read(topic: topic, minimumCount: count, timeout: .milliseconds(Int(timeout * 1000)))
        if countOnly {
            print(messages.count)
            return
        }
        for message in messages {
            let value = String(decoding: message.value, as: UTF8.self)
            if keys {
                print("\(message.key.map { String(decoding: $0, as: UTF8.self) } ?? "")\t\(value)")
            } else {
                print(value)
            }
        }
        if messages.count < count {
            printError("kbridge consume: read \(messages.count) of \(count) messages before the timeout")
            throw ExitCode(1)
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

struct ImportKong: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-kong",
        abstract: "Translate a Kong declarative configuration (decK format) into kbridge's YAML.",
        discussion: """
            Routes with an enabled kafka-upstream plugin (on the route, its service, or global) become kbridge routes, one \
            per path, with the plugin's config as their keys; a datakit plugin becomes the route's workflow and a \
            request-callout plugin its request_callout. Everything that cannot be mapped is listed on standard error \
            and at the top of the output. Check the result with `kbridge check`.
            """)

    @Argument(help: "The Kong declarative configuration (YAML or JSON, as `deck gateway dump` writes it).")
    var file: String

    @Option(name: .shortAndLong, help: "Write the kbridge configuration here instead of standard output.")
    var output: String?

    func run() throws {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            printError("kbridge import-kong: cannot read \(file): \(error.localizedDescription)")
            throw ExitCode(66)  // EX_NOINPUT
        }
        let translation: KongImport.Translation
        do {
            translation = try KongImport.translate(yaml: text)
        } catch {
            printError("kbridge import-kong: \(file): \(error)")
            throw ExitCode(65)  // EX_DATAERR
        }
        for item in translation.unmapped { printError("not mapped: \(item)") }
        guard translation.routeCount > 0 else {
            printError("kbridge import-kong: \(file): no route has a kafka-upstream plugin; nothing to write")
            throw ExitCode(65)
        }
        if let output {
            do {
                try translation.yaml.write(toFile: output, atomically: true, encoding: .utf8)
            } catch {
                printError("kbridge import-kong: cannot write \(output): \(error.localizedDescription)")
                throw ExitCode(73)  // EX_CANTCREAT
            }
            printError("kbridge import-kong: wrote \(translation.routeCount) route\(translation.routeCount == 1 ? "" : "s") to \(output)")
        } else {
            print(translation.yaml, terminator: "")
        }
    }
}
