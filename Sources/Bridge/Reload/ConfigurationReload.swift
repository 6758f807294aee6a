import NIOCore
import NIOHTTP1
import Synchronization

/// What an applied reload changed.
public struct ReloadReport: Sendable, Hashable, CustomStringConvertible {
    /// The configuration's generation now in force (1 was the one kbridge started with).
    public var generation: Int
    public var routes: Int
    /// Producers whose Kafka settings did not change: kept, with their connections and queued messages.
    public var producersKept: Int
    public var producersCreated: Int
    /// Producers no route uses any more: they flush what they accepted, then close, once the requests routed before
    /// the reload are answered.
    public var producersRetired: Int

    public var description: String {
        "generation \(generation): \(routes) route\(routes == 1 ? "" : "s"); producers kept \(producersKept), "
            + "created \(producersCreated), retiring \(producersRetired)"
    }
}

/// Why a reload was not applied; the configuration in force keeps running.
public struct ReloadRefusal: Error, Sendable, CustomStringConvertible {
    public enum Reason: String, Sendable {
        /// The file does not parse or validate (the text lists each problem with its line and key).
        case invalidConfiguration = "invalid_configuration"
        /// A key that only takes effect on a restart changed (the text names them).
        case restartRequired = "restart_required"
        /// A producer, schema registry client, workflow or certificate of the new configuration could not be made.
        case startFailed = "start_failed"
        /// Another reload is being applied.
        case reloadInProgress = "reload_in_progress"
        /// kbridge is shutting down.
        case shuttingDown = "shutting_down"
        /// kbridge runs without a configuration file (its embedded default).
        case noConfigurationFile = "no_configuration_file"
    }

    public var reason: Reason
    public var message: String

    public var description: String { message }
}

extension BridgeConfiguration {
    /// The keys that differ between `self` (in force) and `new` and that take effect only on a restart: the
    /// listeners, their limits and timeouts, logging. Everything under `routes` (and `server.tls`'s files, re-read on
    /// every reload) can be reloaded.
    func keysNeedingRestart(toApply new: BridgeConfiguration) -> [String] {
        let (old, next) = (server, new.server)
        var changed: [String] = []
        func compare<Value: Equatable>(_ key: String, _ value: (ServerConfiguration) -> Value) {
            if value(old) != value(next) { changed.append("server.\(key)") }
        }
        compare("host") { $0.host }
        compare("port") { $0.port }
        compare("threads") { $0.threads }
        compare("shutdown_timeout") { $0.shutdownTimeout }
        compare("health_path") { $0.healthPath }
        compare("metrics_path") { $0.metricsPath }
        compare("ready_path") { $0.readyPath }
        compare("request_id_header") { $0.requestIDHeader }
        compare("access_log") { $0.accessLog }
        compare("tls") { $0.tls }
        compare("admin") { $0.admin }
        compare("request_read_timeout") { $0.requestReadTimeout }
        compare("idle_timeout") { $0.idleTimeout }
        compare("max_connections") { $0.maxConnections }
        compare("max_header_size") { $0.maxHeaderSize }
        compare("max_headers") { $0.maxHeaders }
        compare("max_uri_length") { $0.maxURILength }
        compare("max_form_fields") { $0.maxFormFields }
        compare("max_multipart_parts") { $0.maxMultipartParts }
        if old != next, changed.isEmpty { changed.append("server") }  // a key added to ServerConfiguration and not listed above
        if logLevel != new.logLevel { changed.append("log_level") }
        if logFormat != new.logFormat { changed.append("log_format") }
        return changed
    }
}

/// `POST` on `server.admin.reload_path`: runs a reload and answers its outcome as JSON (200 applied, 422 refused
/// for the file, 409 when one is in progress or kbridge is stopping). The action is set once the bridge exists.
final class ConfigurationReloadEndpoint: Sendable {
    private let action = Mutex<(@Sendable () async -> Result<ReloadReport, ReloadRefusal>)?>(nil)

    func setAction(_ reload: @escaping @Sendable () async -> Result<ReloadReport, ReloadRefusal>) {
        action.withLock { $0 = reload }
    }

    func run() async -> IngestResponse {
        guard let reload = action.withLock({ $0 }) else {
            return .error(.serviceUnavailable, code: "starting", "kbridge is starting")
        }
        var body = ByteBuffer()
        switch await reload() {
        case .success(let report):
            body.writeString("{\"status\":\"reloaded\",\"generation\":\(report.generation),\"routes\":\(report.routes),"
                + "\"producers\":{\"kept\":\(report.producersKept),\"created\":\(report.producersCreated),\"retired\":\(report.producersRetired)}}")
            return IngestResponse(status: .ok, body: body)
        case .failure(let refusal):
            let status: HTTPResponseStatus = switch refusal.reason {
            case .invalidConfiguration, .restartRequired, .startFailed: .unprocessableEntity
            case .reloadInProgress, .shuttingDown, .noConfigurationFile: .conflict
            }
            return .error(status, code: refusal.reason.rawValue, refusal.message)
        }
    }
}
