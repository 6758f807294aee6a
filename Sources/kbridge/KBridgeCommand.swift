import ArgumentParser
import AsyncHTTPClient
import Bridge
import Foundation
import Kafka
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import UnixSignals

@main
struct KBridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kbridge",
        abstract: "An HTTP to Kafka ingestion bridge: HTTP requests become Kafka messages in Kong kafka-upstream's format.",
        subcommands: [Run.self, Check.self, Reload.self, Consume.self, ImportKong.self],
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

        // SIGHUP reloads the configuration file; trapped before the listener opens, so that an early one cannot kill kbridge.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        // A reload reads the file again, with this command line's overrides.
        var reloadSource: (@Sendable () throws -> BridgeConfiguration)?
        if let config {
            let (host, port, logger) = (host, port, logger)
            reloadSource = {
                let loaded = try BridgeConfiguration.load(file: config)
                for warning in loaded.warnings { logger.warning("configuration: \(warning)") }
                var configuration = loaded.configuration
                if let host { configuration.server.host = host }
                if let port { configuration.server.port = port }
                return configuration
            }
        }
        let bridge: KafkaBridge
        do {
            bridge = try await KafkaBridge.start(configuration: configuration, logger: logger, reloadSource: reloadSource)
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
        // SIGHUP: reload the configuration file (server.tls's files are re-read with it); the outcome is logged.
        let reloads = Task { [logger] in
            for await _ in hangups {
                logger.info("SIGHUP: reloading the configuration", metadata: ["file": "\(config ?? "(none)")"])
                await bridge.reload()
            }
        }
        defer { reloads.cancel() }
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

struct Reload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask a running kbridge to reload its configuration file, and print whether it was applied.",
        discussion: """
            Posts to the reload path of the `server.admin` listener named in the configuration file (which is checked \
            first). The running kbridge re-reads its file, validates it and swaps its routes; if the file is not valid, \
            or changes a key that needs a restart, the configuration in force keeps running and the reason is printed. \
            Sending SIGHUP to kbridge does the same, with the outcome in its log.
            """)

    @Argument(help: "The YAML configuration file the running kbridge was started with.")
    var config: String

    @Option(help: "The admin listener's URL (default: from server.admin in the file).")
    var admin: String?

    func run() async throws {
        let configuration: BridgeConfiguration
        do {
            configuration = try BridgeConfiguration.load(file: config).configuration
        } catch {
            printError("kbridge reload: \(config) is not valid; nothing was sent\n\(error)")
            throw ExitCode(configurationErrorExitCode)
        }
        guard let url = admin.map({ $0.hasSuffix("/") ? String($0.dropLast()) : $0 }) ?? configuration.server.admin.map({ admin in
            "http://\(admin.host == "0.0.0.0" ? "127.0.0.1" : admin.host.contains(":") ? "[\(admin.host)]" : admin.host):\(admin.port)"
        }) else {
            printError("kbridge reload: \(config) has no server.admin listener; add one, or send SIGHUP to kbridge")
            throw ExitCode(64)  // EX_USAGE
        }
        guard let path = configuration.server.admin?.reloadPath ?? (admin == nil ? nil : "/reload") else {
            printError("kbridge reload: server.admin.reload_path is off in \(config); send SIGHUP to kbridge")
            throw ExitCode(64)
        }
        var request = HTTPClientRequest(url: url + path)
        request.method = .POST
        let status: HTTPResponseStatus
        let body: String
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
            status = response.status
            body = String(buffer: try await response.body.collect(upTo: 1 << 20))
        } catch {
            printError("kbridge reload: cannot reach \(url + path): \(error)")
            throw ExitCode(69)  // EX_UNAVAILABLE
        }
        if status == .ok {
            print(body)
        } else {
            printError("kbridge reload: not applied (\(status.code)): \(body)")
            throw ExitCode(1)
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
