import Bridge
import Foundation
import TestSupport
import Testing
import Yams

/// The files users deploy with (docker/, deploy/kubernetes, deploy/systemd): each configuration they mount passes
/// `kbridge check`, and the probes, grace periods and build steps around it agree with it.
@Suite struct DeploymentFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL
    /// What the examples read from their environment (Secrets, env files).
    static let environment = ["KAFKA_PASSWORD": "example", "REDIS_PASSWORD": "example"]

    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    static func yaml(_ path: String) throws -> [String: Any] {
        try #require(try Yams.load(yaml: text(path)) as? [String: Any], "\(path) is not a YAML mapping")
    }

    static func configuration(_ path: String) throws -> BridgeConfiguration {
        try BridgeConfiguration.load(file: root.appendingPathComponent(path).path, environment: environment).configuration
    }

    @Test(arguments: ["docker/kbridge.yaml", "deploy/kubernetes/kbridge.yaml", "deploy/systemd/kbridge.yaml"])
    func mountedConfigurationsPassCheck(path: String) async throws {
        let result = try await runKBridge(["check", Self.root.appendingPathComponent(path).path], environment: Self.environment)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains(": OK ("), "\(result.stdout)")
        #expect(!result.stdout.contains("warning:"), "\(result.stdout)")
    }

    @Test func composeRunsKafkaTheRegistryRedisAndTheCheckedConfiguration() throws {
        let compose = try Self.yaml("docker/docker-compose.yaml")
        let services = try #require(compose["services"] as? [String: Any])
        #expect(Set(services.keys).isSuperset(of: ["kafka", "schema-registry", "redis", "kbridge"]))
        let kbridge = try #require(services["kbridge"] as? [String: Any])
        let mounted = try #require((kbridge["configs"] as? [[String: Any]])?.first)
        let target = try #require(mounted["target"] as? String)
        #expect((kbridge["command"] as? [String]) == [target])
        let configs = try #require(compose["configs"] as? [String: [String: Any]])
        #expect(configs[mounted["source"] as? String ?? ""]?["file"] as? String == "./kbridge.yaml")
        let build = try #require(kbridge["build"] as? [String: Any])
        #expect(build["dockerfile"] as? String == "docker/Dockerfile")
    }

    /// The image is built by the steps CI runs: dependencies from scripts/install-deps, then `swift build`.
    @Test func dockerfileBuildsAsCIDoes() throws {
        let dockerfile = try Self.text("docker/Dockerfile")
        #expect(dockerfile.contains("RUN scripts/install-deps"))
        #expect(dockerfile.contains("swift build -c release --product kbridge"))
        #expect(try Self.text("scripts/test").contains("scripts/install-deps --test"))
        #expect(try Self.text(".ci/run").contains("scripts/test"))
        for line in dockerfile.split(separator: "\n") where line.hasPrefix("COPY ") && !line.contains("--from") {
            let source = String(line.split(separator: " ")[1])
            #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(source).path), "\(line): no \(source)")
        }
    }

    @Test func kubernetesProbesAndGracePeriodFitTheConfiguration() throws {
        let configuration = try Self.configuration("deploy/kubernetes/kbridge.yaml")
        let kustomization = try Self.yaml("deploy/kubernetes/kustomization.yaml")
        let generated = try #require((kustomization["configMapGenerator"] as? [[String: Any]])?.first)
        #expect(generated["files"] as? [String] == ["kbridge.yaml"])
        let deployment = try Self.yaml("deploy/kubernetes/deployment.yaml")
        let pod = try #require(((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        #expect(container["args"] as? [String] == ["/etc/kbridge/kbridge.yaml"])
        let mounts = try #require(container["volumeMounts"] as? [[String: Any]])
        #expect(mounts.contains { $0["mountPath"] as? String == "/etc/kbridge" })
        // The probes ask the admin listener for the configured paths.
        let ports = try #require(container["ports"] as? [[String: Any]])
        let adminPort = ports.first { $0["name"] as? String == "admin" }?["containerPort"] as? Int
        #expect(adminPort != nil && adminPort == configuration.server.admin?.port)
        let liveness = try #require((container["livenessProbe"] as? [String: Any])?["httpGet"] as? [String: Any])
        let readiness = try #require((container["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any])
        #expect(liveness["path"] as? String == configuration.server.healthPath)
        #expect(readiness["path"] as? String == configuration.server.readyPath)
        #expect(liveness["port"] as? String == "admin" && readiness["port"] as? String == "admin")
        // The pod is not killed before the preStop pause and kbridge's drain are over.
        let preStop = try #require(((container["lifecycle"] as? [String: Any])?["preStop"] as? [String: Any])?["sleep"] as? [String: Any])
        let pause = try #require(preStop["seconds"] as? Int)
        let grace = try #require(pod["terminationGracePeriodSeconds"] as? Int)
        let drain = Double(configuration.server.shutdownTimeout.components.seconds)
        #expect(Double(grace) > Double(pause) + drain, "grace \(grace) s, preStop \(pause) s, shutdown_timeout \(drain) s")
    }

    @Test func systemdWaitsOutTheDrain() throws {
        let unit = try Self.text("deploy/systemd/kbridge.service")
        let configuration = try Self.configuration("deploy/systemd/kbridge.yaml")
        #expect(unit.contains("ExecStart=/usr/local/bin/kbridge /etc/kbridge/kbridge.yaml"))
        #expect(unit.contains("ExecStartPre=/usr/local/bin/kbridge check /etc/kbridge/kbridge.yaml"))
        let stop = try #require(unit.split(separator: "\n").first { $0.hasPrefix("TimeoutStopSec=") })
        let seconds = try #require(Double(stop.dropFirst("TimeoutStopSec=".count).dropLast()))
        #expect(stop.hasSuffix("s") && seconds > Double(configuration.server.shutdownTimeout.components.seconds))
    }
}
