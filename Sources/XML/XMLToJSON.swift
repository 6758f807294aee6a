import CLibXML2
import JSON

/// State of one parse, reachable from libxml2's callbacks through the parser context's `_private` pointer.
private final class ParseState {
    let errors = LibXML2.ErrorCollector()
    let limits: XMLLimits
    var nodeCount = 0
    /// Where a DOCTYPE declaration was seen (the parse stops there).
    var doctypeAt: (line: Int, column: Int)?
    /// A limit that stopped the parse.
    var limitError: XMLConversionError?

    init(limits: XMLLimits) { self.limits = limits }

    static func from(_ context: UnsafeMutableRawPointer?) -> (xmlParserCtxtPtr, ParseState)? {
        guard let context else { return nil }
        let parser = context.assumingMemoryBound(to: xmlParserCtxt.self)
        guard let state = parser.pointee._private else { return nil }
        return (parser, Unmanaged<ParseState>.fromOpaque(state).takeUnretainedValue())
    }
}

enum XMLToJSONConverter {
    /// Options bits for the parser: no network; CDATA sections as text. Deliberately absent: `XML_PARSE_NOENT` (entity
    /// substitution), `XML_PARSE_DTDLOAD`, `XML_PARSE_DTDATTR`, `XML_PARSE_DTDVALID`, `XML_PARSE_HUGE`, `XML_PARSE_XINCLUDE`.
    private static let parserOptions = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOCDATA.rawValue)

    static func convert(_ bytes: [UInt8], options: XMLToJSONOptions) throws(XMLConversionError) -> JSONValue {
        let limits = options.limits
        guard bytes.count <= limits.maximumBytes else { throw .tooLarge(size: bytes.count, limit: limits.maximumBytes) }
        guard !bytes.isEmpty, let size = Int32(exactly: bytes.count) else {
            throw .invalidXML(line: 1, column: 1, message: "Document is empty")
        }
        LibXML2.initialize()
        let document = try parse(bytes, size: size, limits: limits)
        defer { xmlFreeDoc(document) }
        var walker = TreeWalker(options: options)
        if let xpath = options.xpath { return try walker.convertXPathResult(xpath, in: document) }
        guard let root = xmlDocGetRootElement(document) else {
            throw .invalidXML(line: 1, column: 1, message: "Document has no root element")
        }
        var top = ElementContent()
        try walker.add(child: root, to: &top, depth: 1)
        return try walker.finish(top, pathDescription: "/")
    }

    /// Parses with the safe options, refusing DOCTYPE declarations and enforcing the depth and node limits on the way.
    private static func parse(_ bytes: [UInt8], size: Int32, limits: XMLLimits) throws(XMLConversionError) -> xmlDocPtr {
        // libxml2 2.9 copies the buffer into the parser input, but the bytes stay pinned for the whole parse anyway.
        let result = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(XMLConversionError) -> xmlDocPtr in
                let parser = buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    xmlCreateMemoryParserCtxt($0, size)
                }
                return try parse(parser, limits: limits)
            }
        }
        return try result.get()
    }

    private static func parse(_ parser: xmlParserCtxtPtr?, limits: XMLLimits) throws(XMLConversionError) -> xmlDocPtr {
        guard let parser else { throw .invalidXML(line: 1, column: 1, message: "out of memory") }
        defer { xmlFreeParserCtxt(parser) }
        let state = ParseState(limits: limits)
        return try withExtendedLifetime(state) { () throws(XMLConversionError) -> xmlDocPtr in
            xmlCtxtUseOptions(parser, parserOptions)
            parser.pointee._private = Unmanaged.passUnretained(state).toOpaque()
            guard let sax = parser.pointee.sax else { throw .invalidXML(line: 1, column: 1, message: "out of memory") }
            // Errors go to the state, never to stderr (libxml2 prefers a parser context's structured handler).
            sax.pointee.serror = { context, error in
                guard let error, let (_, state) = ParseState.from(context) else { return }
                state.errors.record(error)
            }
            // Comments and processing instructions are dropped from the JSON, so they are not built at all (a document
            // of 16 MiB of `<!---->` would otherwise become millions of nodes without any element).
            sax.pointee.comment = nil
            sax.pointee.processingInstruction = nil
            // A DOCTYPE stops the parse before its internal subset is read.
            sax.pointee.internalSubset = { context, _, _, _ in
                guard let (parser, state) = ParseState.from(context) else { return }
                state.doctypeAt = (Int(xmlSAX2GetLineNumber(context)), Int(xmlSAX2GetColumnNumber(context)))
                xmlStopParser(parser)
            }
            sax.pointee.externalSubset = { context, _, _, _ in
                guard let (parser, state) = ParseState.from(context) else { return }
                state.doctypeAt = state.doctypeAt ?? (Int(xmlSAX2GetLineNumber(context)), Int(xmlSAX2GetColumnNumber(context)))
                xmlStopParser(parser)
            }
            // Depth and node count, checked per start tag before libxml2 builds the element.
            sax.pointee.startElementNs = { context, localName, prefix, uri, namespaceCount, namespaces, attributeCount,
                                           defaultedCount, attributes in
                guard let (parser, state) = ParseState.from(context) else { return }
                let depth = Int(parser.pointee.nameNr) + 1
                let line = Int(xmlSAX2GetLineNumber(context))
                if depth > state.limits.maximumDepth {
                    state.limitError = .tooDeep(limit: state.limits.maximumDepth, line: line)
                    xmlStopParser(parser)
                    return
                }
                let (count, overflow) = state.nodeCount.addingReportingOverflow(1 + max(0, Int(attributeCount)))
                state.nodeCount = count
                if overflow || count > state.limits.maximumNodes {
                    state.limitError = .tooManyNodes(limit: state.limits.maximumNodes, line: line)
                    xmlStopParser(parser)
                    return
                }
                xmlSAX2StartElementNs(context, localName, prefix, uri, namespaceCount, namespaces, attributeCount,
                                      defaultedCount, attributes)
            }
            _ = xmlParseDocument(parser)
            let document = parser.pointee.myDoc
            parser.pointee.myDoc = nil
            if let doctype = state.doctypeAt {
                xmlFreeDoc(document)
                throw .doctypeNotAllowed(line: doctype.line, column: doctype.column)
            }
            if let limitError = state.limitError {
                xmlFreeDoc(document)
                throw limitError
            }
            guard parser.pointee.wellFormed != 0, let document else {
                xmlFreeDoc(document)
                if state.errors.mostRelevant == nil { withUnsafePointer(to: &parser.pointee.lastError) { state.errors.record($0) } }
                let message = state.errors.mostRelevant
                throw .invalidXML(
                    line: message?.line ?? 0, column: message?.column ?? 0, message: message?.message ?? "not well-formed")
            }
            return document
        }
    }
}

/// What one element (or the XPath result's virtual parent) holds, before it becomes a JSON value.
private struct ElementContent {
    /// Namespace declarations and attributes, in order, with their final JSON keys (prefix mode) or names (block mode).
    var attributes: [(key: String, value: JSONValue)] = []
    /// Child elements grouped by name, in order of first appearance.
    var groups: [(name: String, values: [JSONValue])] = []
    /// Group positions by name, once there are many groups.
    var groupIndex: [String: Int] = [:]
    var text = ""
    /// Whether the same attribute key may occur more than once (an XPath result's attributes of several elements).
    var mayRepeatAttributes = false

    mutating func addChild(name: String, value: JSONValue) {
        if groups.count < 8 {
            if let position = groups.firstIndex(where: { $0.name == name }) {
                groups[position].values.append(value)
                return
            }
        } else {
            if groupIndex.isEmpty { for (position, group) in groups.enumerated() { groupIndex[group.name] = position } }
            if let position = groupIndex[name] {
                groups[position].values.append(value)
                return
            }
            groupIndex[name] = groups.count
        }
        groups.append((name, [value]))
    }
}

private struct TreeWalker {
    let options: XMLToJSONOptions
    /// Element names from the root to the element being converted, for error messages.
    var path: [String] = []

    init(options: XMLToJSONOptions) { self.options = options }

    var pathDescription: String { "/" + path.joined(separator: "/") }

    static func qualifiedName(_ name: UnsafePointer<xmlChar>?, namespace: xmlNsPtr?) -> String {
        let local = name.map { String(cString: $0) } ?? ""
        guard let prefix = namespace?.pointee.prefix else { return local }
        return String(cString: prefix) + ":" + local
    }

    func attributeKey(_ name: String) -> String {
        if case .prefix(let prefix) = options.attributes { return prefix + name }
        return name
    }

    /// Adds `node` (an element) to `parent` as a child, converting it.
    mutating func add(child node: xmlNodePtr, to parent: inout ElementContent, depth: Int) throws(XMLConversionError) {
        // libxml2 already refused deeper documents while parsing; this keeps the recursion bounded regardless.
        guard depth <= options.limits.maximumDepth else { throw .tooDeep(limit: options.limits.maximumDepth, line: 0) }
        let name = Self.qualifiedName(node.pointee.name, namespace: node.pointee.ns)
        path.append(name)
        defer { path.removeLast() }
        var content = ElementContent()
        var namespace = node.pointee.nsDef
        while let declaration = namespace {
            let key = declaration.pointee.prefix.map { "xmlns:" + String(cString: $0) } ?? "xmlns"
            let value = declaration.pointee.href.map { String(cString: $0) } ?? ""
            content.attributes.append((attributeKey(key), .string(value)))
            namespace = declaration.pointee.next
        }
        var attribute = node.pointee.properties
        while let current = attribute {
            addAttribute(current, to: &content)
            attribute = current.pointee.next
        }
        var child = node.pointee.children
        while let current = child {
            try addNode(current, to: &content, depth: depth)
            child = current.pointee.next
        }
        parent.addChild(name: name, value: try finish(content, pathDescription: pathDescription))
    }

    func addAttribute(_ attribute: xmlAttrPtr, to content: inout ElementContent) {
        let name = Self.qualifiedName(attribute.pointee.name, namespace: attribute.pointee.ns)
        var value = ""
        var child = attribute.pointee.children
        while let current = child {
            if let text = current.pointee.content { value += String(cString: text) }
            child = current.pointee.next
        }
        content.attributes.append((attributeKey(name), XMLText.scalar(Substring(value), recognizeType: options.recognizeType)))
    }

    /// Adds a child node of any kind (element, text, CDATA; others are dropped).
    mutating func addNode(_ node: xmlNodePtr, to content: inout ElementContent, depth: Int) throws(XMLConversionError) {
        switch node.pointee.type {
        case XML_ELEMENT_NODE:
            try add(child: node, to: &content, depth: depth + 1)
        case XML_TEXT_NODE, XML_CDATA_SECTION_NODE:
            if let text = node.pointee.content { content.text += String(cString: text) }
        default:
            break
        }
    }

    /// The JSON value of an element's content (mapping in ``XMLConversion``).
    func finish(_ content: ElementContent, pathDescription: @autoclosure () -> String) throws(XMLConversionError) -> JSONValue {
        let text = XMLText.trimmed(content.text)
        if content.attributes.isEmpty, content.groups.isEmpty {
            if text.isEmpty { return .null }
            let value = XMLText.scalar(text, recognizeType: options.recognizeType)
            return options.textAsProperty ? .object(JSONObject([(options.textBlockName, value)])) : value
        }
        var members: [(String, JSONValue)] = []
        members.reserveCapacity(content.attributes.count + content.groups.count + 1)
        // Attribute keys, as they appear among the members (prefix mode), or the block name.
        var attributeKeys: [String] = []
        if !content.attributes.isEmpty {
            // An element's attribute names are unique; an XPath result may hold the same attribute of several elements,
            // which then becomes an array like repeated elements.
            var grouped = content.attributes
            if content.mayRepeatAttributes {
                var attributes = ElementContent()
                for (key, value) in content.attributes { attributes.addChild(name: key, value: value) }
                grouped = attributes.groups.map { ($0.name, $0.values.count == 1 ? $0.values[0] : JSONValue.array($0.values)) }
            }
            switch options.attributes {
            case .prefix:
                members.append(contentsOf: grouped.lazy.map { ($0.key, $0.value) })
                attributeKeys = grouped.map(\.key)
            case .block(let blockName):
                members.append((blockName, .object(JSONObject(grouped.map { ($0.key, $0.value) }))))
                attributeKeys = [blockName]
            }
        }
        // Element names never start with '@' or '#', so collisions need an unusual prefix or block name; check cheaply.
        for group in content.groups {
            if (!text.isEmpty && group.name == options.textBlockName) || attributeKeys.contains(group.name) {
                throw .keyCollision(key: group.name, path: pathDescription())
            }
            members.append((group.name, group.values.count == 1 ? group.values[0] : .array(group.values)))
        }
        if !text.isEmpty {
            if attributeKeys.contains(options.textBlockName) {
                throw .keyCollision(key: options.textBlockName, path: pathDescription())
            }
            members.append((options.textBlockName, XMLText.scalar(text, recognizeType: options.recognizeType)))
        }
        return .object(JSONObject(members))
    }

    /// Evaluates `expression` on `document` and converts its value (mapping in ``XMLConversion``).
    mutating func convertXPathResult(_ expression: XPathExpression, in document: xmlDocPtr) throws(XMLConversionError) -> JSONValue {
        guard let context = xmlXPathNewContext(document) else {
            throw .xpathFailed(expression: expression.text, message: "out of memory")
        }
        defer { xmlXPathFreeContext(context) }
        let errors = LibXML2.ErrorCollector()
        let result: xmlXPathObjectPtr? = withExtendedLifetime(errors) {
            errors.install(on: context)
            context.pointee.opLimit = XPathExpression.operationLimit
            // Prefixes declared on the root element are usable in the expression.
            if let root = xmlDocGetRootElement(document) {
                var namespace = root.pointee.nsDef
                while let declaration = namespace {
                    if let prefix = declaration.pointee.prefix { xmlXPathRegisterNs(context, prefix, declaration.pointee.href) }
                    namespace = declaration.pointee.next
                }
            }
            return xmlXPathCompiledEval(expression.compiled.pointer, context)
        }
        guard let result else {
            throw .xpathFailed(expression: expression.text, message: errors.mostRelevant?.message ?? "evaluation failed")
        }
        defer { xmlXPathFreeObject(result) }
        switch result.pointee.type {
        case XPATH_BOOLEAN:
            return .bool(result.pointee.boolval != 0)
        case XPATH_NUMBER:
            return .double(result.pointee.floatval)
        case XPATH_STRING:
            return .string(result.pointee.stringval.map { String(cString: $0) } ?? "")
        case XPATH_NODESET:
            var content = ElementContent()
            content.mayRepeatAttributes = true
            if let nodes = result.pointee.nodesetval, let table = nodes.pointee.nodeTab {
                for position in 0..<Int(max(0, nodes.pointee.nodeNr)) {
                    guard let node = table[position] else { continue }
                    switch node.pointee.type {
                    case XML_DOCUMENT_NODE:
                        if let root = xmlDocGetRootElement(document) { try add(child: root, to: &content, depth: 1) }
                    case XML_ATTRIBUTE_NODE:
                        node.withMemoryRebound(to: xmlAttr.self, capacity: 1) { addAttribute($0, to: &content) }
                    default:
                        try addNode(node, to: &content, depth: Self.depth(of: node) - 1)
                    }
                }
            }
            return try finish(content, pathDescription: "XPath result")
        default:
            throw .xpathFailed(expression: expression.text, message: "unsupported result type \(result.pointee.type.rawValue)")
        }
    }

    /// The element depth of `node` (the root element is 1).
    static func depth(of node: xmlNodePtr) -> Int {
        var depth = 0
        var current: xmlNodePtr? = node
        while let element = current, element.pointee.type == XML_ELEMENT_NODE || element.pointee.type == XML_TEXT_NODE {
            depth += 1
            current = element.pointee.parent
        }
        return depth
    }
}
