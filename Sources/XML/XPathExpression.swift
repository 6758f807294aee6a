import CLibXML2

/// An XPath 1.0 expression compiled once (at start-up, so that an invalid expression is a configuration error) and
/// evaluated by any number of conversions concurrently: libxml2 only reads a compiled expression while evaluating it,
/// each evaluation has its own XPath context.
public struct XPathExpression: Sendable, CustomStringConvertible {
    /// The expression as written.
    public let text: String
    let compiled: CompiledXPath

    /// The most XPath steps one evaluation may take (libxml2's operation limit), so that an expensive expression on a
    /// large document fails instead of running for long.
    public static let operationLimit: UInt = 10_000_000

    /// Compiles `text`; an invalid expression throws ``XMLConversionError/invalidXPath(expression:message:)`` with
    /// libxml2's message.
    public init(_ text: String) throws(XMLConversionError) {
        LibXML2.initialize()
        guard !text.isEmpty, text.utf8.count <= 256 else {
            throw .invalidXPath(expression: text, message: "must have 1 to 256 characters")
        }
        guard !text.utf8.contains(0) else { throw .invalidXPath(expression: text, message: "contains a NUL character") }
        guard let context = xmlXPathNewContext(nil) else {
            throw .invalidXPath(expression: text, message: "out of memory")
        }
        defer { xmlXPathFreeContext(context) }
        let errors = LibXML2.ErrorCollector()
        let compiled = withExtendedLifetime(errors) { () -> xmlXPathCompExprPtr? in
            errors.install(on: context)
            return text.withCString { xmlXPathCtxtCompile(context, UnsafeRawPointer($0).assumingMemoryBound(to: xmlChar.self)) }
        }
        guard let compiled else {
            throw .invalidXPath(expression: text, message: errors.first?.message ?? "invalid expression")
        }
        self.text = text
        self.compiled = CompiledXPath(compiled)
    }

    public var description: String { text }
}

/// Owns a compiled expression; immutable after creation.
final class CompiledXPath: @unchecked Sendable {
    let pointer: xmlXPathCompExprPtr

    init(_ pointer: xmlXPathCompExprPtr) { self.pointer = pointer }

    deinit { xmlXPathFreeCompExpr(pointer) }
}
