import CLibXML2

/// libxml2's process-wide set-up and the error plumbing shared by parsing and XPath.
///
/// libxml2 2.9 is thread-safe for parsing and XPath evaluation when each thread uses its own parser and XPath contexts
/// (as every conversion here does) once `xmlInitParser` has run; it runs exactly once, before first use.
enum LibXML2 {
    private static let initialized: Bool = {
        xmlInitParser()
        return true
    }()

    /// Runs `xmlInitParser` once per process, and silences libxml2's fallback error output for the calling thread.
    static func initialize() {
        _ = initialized
        kbridge_xml_silence_thread_errors()
    }

    struct Message: Equatable {
        var line: Int
        var column: Int
        var message: String
        var isFatal: Bool
    }

    /// Collects libxml2's errors for one parse or XPath evaluation (a per-context structured handler), never printing.
    final class ErrorCollector {
        private(set) var first: Message?
        private var firstFatal: Message?

        /// The first fatal error, or else the first error of any level.
        var mostRelevant: Message? { firstFatal ?? first }

        func record(_ error: UnsafePointer<xmlError>) {
            let raw = error.pointee.message.map { String(cString: $0) } ?? "unknown error"
            let message = Message(
                line: Int(error.pointee.line), column: Int(error.pointee.int2),
                message: String(XMLText.trimmed(raw)), isFatal: error.pointee.level == XML_ERR_FATAL)
            if first == nil { first = message }
            if message.isFatal, firstFatal == nil { firstFatal = message }
        }

        /// Makes this collector the error handler of an XPath context (valid while the collector lives).
        func install(on context: xmlXPathContextPtr) {
            context.pointee.userData = Unmanaged.passUnretained(self).toOpaque()
            context.pointee.error = { userData, error in
                guard let userData, let error else { return }
                Unmanaged<ErrorCollector>.fromOpaque(userData).takeUnretainedValue().record(error)
            }
        }
    }
}
