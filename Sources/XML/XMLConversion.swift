import JSON

/// XML ⇄ JSON conversion for the Datakit nodes `xml_to_json` and `json_to_xml` (Kong Gateway 3.13+).
///
/// Kong documents the element order of both nodes as nondeterministic; kbridge's is deterministic: `xml_to_json` keeps
/// document order, `json_to_xml` keeps JSON member order.
///
/// # XML → JSON (``json(fromXML:options:)``)
///
/// The document (or, with ``XMLToJSONOptions/xpath``, the selected node set) becomes an object with one member per
/// top-level element name: `<order id="7"><item>a</item></order>` → `{"order":{"@id":7,"item":"a"}}`.
///
/// An element's value:
/// - **Empty** (no attributes, no child elements, no text other than whitespace): `null`. `<a/>`, `<a></a>` and
///   `<a>  </a>` all give `null`, whatever the options (so `""` never comes out of an element).
/// - **Text only** (no attributes, no child elements): the text as a scalar, `<a>x</a>` → `"x"`; with
///   ``XMLToJSONOptions/textAsProperty`` an object instead, `{"#text":"x"}`.
/// - **Anything else**: an object whose members are, in this order: namespace declarations as attributes
///   (`xmlns` → `"@xmlns"`, `xmlns:p` → `"@xmlns:p"`), then the attributes in document order, then one member per child
///   element name in order of first appearance, then the text under ``XMLToJSONOptions/textBlockName`` (`#text`).
/// - **Repeated elements**: children with the same name become one array member, at the position of the first one,
///   holding the values in document order: `<r><b>1</b><c/><b>2</b></r>` → `{"r":{"b":[1,2],"c":null}}`.
///   A name that occurs once is never an array.
/// - **Attributes**: ``XMLAttributeNaming/prefix(_:)`` (default `@`) makes each attribute a member named prefix + name
///   (`{"@id":7}`); ``XMLAttributeNaming/block(_:)`` gathers them in one object member (`{"_attrs":{"id":7}}`).
/// - **Text**: the element's direct text and CDATA sections (CDATA is plain text), concatenated in document order across
///   child elements (mixed content `<p>Hi <b>you</b> there</p>` → `{"p":{"b":"you","#text":"Hi  there"}}`), with
///   leading and trailing XML whitespace (space, tab, CR, LF) trimmed; whitespace-only text counts as no text.
///   Entity and character references (`&amp;`, `&#233;`) are replaced by their characters. Comments and processing
///   instructions are dropped.
/// - **Names** are kept as written, namespace prefix included (`<soap:Body>` → `"soap:Body"`); namespace URIs are only
///   visible through the `xmlns` attributes.
/// - **Attribute values** are kept exactly (not trimmed; the parser has already normalized tabs and newlines in them
///   to spaces, as XML requires).
/// - **Types** (``XMLToJSONOptions/recognizeType``, default on; applies to trimmed text and to whole attribute values):
///   `true`/`false` become booleans, `null` becomes `null`, and text that is exactly a JSON number
///   (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, at most 1000 characters) becomes that number with its text
///   kept (`1.50` stays `1.50`). Everything else stays a string: `007`, `+1`, `.5`, `1.`, `True`, `0x1F`, `NaN`.
///   Off: every text and attribute value is a string.
/// - **Key collisions** (a child element named like the attributes block, a prefixed attribute or the text block, as
///   with text block name `value` and a child `<value>`) fail with ``XMLConversionError/keyCollision(key:path:)``
///   rather than dropping data.
///
/// With an XPath expression, the result depends on its value: a node set is converted as if its nodes were the children
/// of one element (elements grouped by name as above, attribute nodes as attributes, text nodes as text, the document
/// node `/` as its root element; namespace, comment and PI nodes dropped), so `//item` selecting one node gives
/// `{"item":{...}}`, selecting three gives `{"item":[{...},{...},{...}]}`, `//item/@id` on three items gives
/// `{"@id":[1,2,3]}` (repeated attributes become arrays too) and selecting none gives `null`; a number gives a
/// JSON number (`NaN` and infinities `null`), a string a JSON string (never typed) and a boolean a JSON boolean.
/// Prefixes declared on the root element can be used in the expression (`/soap:Envelope/soap:Body`); elements in a
/// default namespace need `*[local-name()='name']`.
///
/// # JSON → XML (``xml(from:options:)``)
///
/// The output is UTF-8 without indentation, starting with `<?xml version="1.0" encoding="UTF-8"?>`.
/// - **Root**: with ``JSONToXMLOptions/rootElementName`` the whole value is the content of that element. Without it, an
///   object with exactly one member whose value is not an array is its own root element (`{"a":{"b":1}}` →
///   `<a><b>1</b></a>`, the inverse of `xml_to_json`); any other value is the content of a `<root>` element.
/// - **Content** of an element named `n`: `null` → `<n/>`; a string, number or boolean → `<n>text</n>` (numbers as
///   written, booleans as `true`/`false`, `""` → `<n></n>`); an object → attributes and children below; an array is
///   only allowed as a member value (a top-level array fails with ``XMLConversionError/unrepresentable(path:reason:)``).
/// - **Object members**, in member order: attributes (prefix mode: members whose key starts with the prefix, the rest
///   of the key being the attribute name; block mode: the members of the object under the block name) go into the start
///   tag, with scalar values (`null` omits the attribute); the member named ``JSONToXMLOptions/textBlockName`` is
///   written as text where it appears among the members (a scalar; `null` writes the text `null`, which is what
///   `xml_to_json` makes of it with `recognize_type`); every other member is a child
///   element named by its key; an array member becomes one element per item, in array order (`{"b":[1,2]}` →
///   `<b>1</b><b>2</b>`, an empty array none; an array inside an array fails).
/// - **Names**: element and attribute names must be XML 1.0 names with at most one colon, not first or last (prefixes
///   are written as given, and declarations only where an `xmlns` attribute member says so); anything else fails with
///   ``XMLConversionError/invalidName(name:path:)`` naming the key.
/// - **Escaping**: `&`, `<`, `>` in text; `&`, `<`, `>`, `"`, tab, LF and CR in attribute values (so they survive
///   attribute-value normalization); CR in text as `&#13;`. Characters that XML 1.0 cannot carry at all (controls other
///   than tab, LF, CR; U+FFFE, U+FFFF) fail with ``XMLConversionError/unrepresentable(path:reason:)``.
///
/// # Security and bounds
///
/// Input is request data or a callout's response, so the parser never loads a DTD, never fetches anything from the
/// network or the file system, and never expands entities beyond the five predefined ones and character references.
/// A document with a DOCTYPE declaration is refused outright (``XMLConversionError/doctypeNotAllowed``): it is the
/// simplest rule that rules out XXE, billion-laughs expansion and external DTDs, and the parser stops as soon as it sees
/// the declaration. Input size, element depth and the number of elements plus attributes are bounded
/// (``XMLLimits``), checked while parsing. libxml2's error messages (line, column, message) are passed on in the error,
/// never printed. Conversions are safe to run concurrently from any number of threads.
public enum XMLConversion {
    /// Converts an XML document to JSON (mapping in the type's documentation).
    public static func json(fromXML bytes: [UInt8], options: XMLToJSONOptions = XMLToJSONOptions())
        throws(XMLConversionError) -> JSONValue
    {
        try options.validate()
        return try XMLToJSONConverter.convert(bytes, options: options)
    }

    /// Converts a JSON value to an XML document, UTF-8 encoded (mapping in the type's documentation).
    public static func xml(from value: JSONValue, options: JSONToXMLOptions = JSONToXMLOptions())
        throws(XMLConversionError) -> [UInt8]
    {
        try options.validate()
        var writer = JSONToXMLWriter(options: options)
        return try writer.document(value)
    }
}

/// How attributes appear in JSON (Kong's `attributes_name_prefix` / `attributes_block_name`; Kong requires one of them).
public enum XMLAttributeNaming: Sendable, Hashable {
    /// Each attribute is a member named prefix + attribute name (`@id`).
    case prefix(String)
    /// All attributes of an element are members of one object member with this name.
    case block(String)

    /// The naming from Kong's two node fields: at most one may be set; neither gives the default `@` prefix.
    public static func kong(blockName: String?, namePrefix: String?) throws(XMLConversionError) -> XMLAttributeNaming {
        switch (blockName, namePrefix) {
        case (.some, .some): throw .invalidOptions("attributes_block_name and attributes_name_prefix are mutually exclusive")
        case (.some(let blockName), nil): return .block(blockName)
        case (nil, .some(let prefix)): return .prefix(prefix)
        case (nil, nil): return .prefix("@")
        }
    }

    /// The attribute names and the text block name, checked together (they must not collide).
    func validate(textBlockName: String) throws(XMLConversionError) {
        try validate()
        try XMLLimits.checkOptionName(textBlockName, field: "text_block_name")
        if case .block(let name) = self, name == textBlockName {
            throw .invalidOptions("attributes_block_name and text_block_name are both '\(name)'")
        }
    }

    func validate() throws(XMLConversionError) {
        switch self {
        case .prefix(let prefix):
            try XMLLimits.checkOptionName(prefix, field: "attributes_name_prefix")
        case .block(let name):
            try XMLLimits.checkOptionName(name, field: "attributes_block_name")
        }
    }
}

/// Bounds on a conversion's input and output.
public struct XMLLimits: Sendable, Hashable {
    /// Largest XML input (xml_to_json) or XML output (json_to_xml), in bytes.
    public var maximumBytes: Int = 16 * 1024 * 1024
    /// Deepest element nesting (the root element is depth 1; libxml2 itself stops at 257 levels); for json_to_xml, the
    /// deepest JSON nesting.
    public var maximumDepth: Int = 256
    /// Most elements plus attributes in one XML document, counted while parsing (comments and processing instructions
    /// are not built at all, and text nodes cannot outnumber elements by more than one, so this bounds the tree).
    public var maximumNodes: Int = 200_000

    public init() {}

    public init(maximumBytes: Int, maximumDepth: Int, maximumNodes: Int) {
        self.maximumBytes = maximumBytes
        self.maximumDepth = maximumDepth
        self.maximumNodes = maximumNodes
    }

    func validate() throws(XMLConversionError) {
        guard maximumBytes > 0, maximumBytes <= Int(Int32.max) else {
            throw .invalidOptions("maximumBytes must be between 1 and \(Int32.max), not \(maximumBytes)")
        }
        guard maximumDepth > 0 else { throw .invalidOptions("maximumDepth must be positive, not \(maximumDepth)") }
        guard maximumNodes > 0 else { throw .invalidOptions("maximumNodes must be positive, not \(maximumNodes)") }
    }

    /// Kong's bounds on the name fields: 1...32 characters.
    static func checkOptionName(_ value: String, field: String) throws(XMLConversionError) {
        guard !value.isEmpty, value.count <= 32 else {
            throw .invalidOptions("\(field) must have 1 to 32 characters, not \(value.count)")
        }
    }
}

/// Options of ``XMLConversion/json(fromXML:options:)``, with Kong's defaults.
public struct XMLToJSONOptions: Sendable {
    /// `attributes_name_prefix` / `attributes_block_name` (default prefix `@`).
    public var attributes: XMLAttributeNaming = .prefix("@")
    /// `text_block_name` (default `#text`): the member holding an element's text when it has attributes or children.
    public var textBlockName: String = "#text"
    /// `text_as_property` (default false): text-only elements become `{"#text": value}` instead of the bare value.
    public var textAsProperty: Bool = false
    /// `recognize_type` (default true): numbers, booleans and `null` in text and attribute values become typed.
    public var recognizeType: Bool = true
    /// `xpath`: convert only what this expression selects.
    public var xpath: XPathExpression?
    public var limits: XMLLimits = XMLLimits()

    public init(
        attributes: XMLAttributeNaming = .prefix("@"), textBlockName: String = "#text", textAsProperty: Bool = false,
        recognizeType: Bool = true, xpath: XPathExpression? = nil, limits: XMLLimits = XMLLimits()
    ) {
        self.attributes = attributes
        self.textBlockName = textBlockName
        self.textAsProperty = textAsProperty
        self.recognizeType = recognizeType
        self.xpath = xpath
        self.limits = limits
    }

    /// Checks the options (Kong's length bounds on the names); conversions check them too.
    public func validate() throws(XMLConversionError) {
        try attributes.validate(textBlockName: textBlockName)
        try limits.validate()
    }
}

/// Options of ``XMLConversion/xml(from:options:)``, with Kong's defaults.
public struct JSONToXMLOptions: Sendable {
    /// `root_element_name`: the element that holds the whole value (see the mapping for what happens without it).
    public var rootElementName: String?
    /// `attributes_name_prefix` / `attributes_block_name` (default prefix `@`).
    public var attributes: XMLAttributeNaming = .prefix("@")
    /// `text_block_name` (default `#text`).
    public var textBlockName: String = "#text"
    public var limits: XMLLimits = XMLLimits()

    public init(
        rootElementName: String? = nil, attributes: XMLAttributeNaming = .prefix("@"), textBlockName: String = "#text",
        limits: XMLLimits = XMLLimits()
    ) {
        self.rootElementName = rootElementName
        self.attributes = attributes
        self.textBlockName = textBlockName
        self.limits = limits
    }

    /// Checks the options (Kong's length bounds; the root element name must be an XML name of at most 64 characters).
    public func validate() throws(XMLConversionError) {
        try attributes.validate(textBlockName: textBlockName)
        if let rootElementName {
            guard !rootElementName.isEmpty, rootElementName.count <= 64 else {
                throw .invalidOptions("root_element_name must have 1 to 64 characters, not \(rootElementName.count)")
            }
            if let reason = XMLName.problem(rootElementName) {
                throw .invalidOptions("root_element_name '\(rootElementName)' is not an XML name: \(reason)")
            }
        }
        try limits.validate()
    }
}

/// Why a conversion failed. Descriptions name the place (line and column, or the JSON path of the key).
public enum XMLConversionError: Error, Equatable, CustomStringConvertible {
    /// The options are inconsistent or out of Kong's bounds.
    case invalidOptions(String)
    /// The XPath expression does not compile.
    case invalidXPath(expression: String, message: String)
    /// The XPath expression failed on this document (an undefined prefix or function, the operation limit).
    case xpathFailed(expression: String, message: String)
    /// The XML input (or the XML output being written) is larger than the limit.
    case tooLarge(size: Int, limit: Int)
    /// The document has a DOCTYPE declaration, which kbridge refuses (no DTDs, no entity declarations).
    case doctypeNotAllowed(line: Int, column: Int)
    /// The XML is not well-formed; libxml2's first error.
    case invalidXML(line: Int, column: Int, message: String)
    /// Elements (or JSON values) nest deeper than the limit.
    case tooDeep(limit: Int, line: Int)
    /// The document has more elements plus attributes than the limit.
    case tooManyNodes(limit: Int, line: Int)
    /// Two parts of an element would become the same JSON member.
    case keyCollision(key: String, path: String)
    /// A JSON key (or attribute key) is not a valid XML name.
    case invalidName(name: String, path: String)
    /// A JSON value has no XML form (a top-level array, an array in an array, an object as an attribute, a control
    /// character).
    case unrepresentable(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidOptions(let reason): "invalid XML conversion options: \(reason)"
        case .invalidXPath(let expression, let message): "invalid XPath expression '\(expression)': \(message)"
        case .xpathFailed(let expression, let message): "XPath expression '\(expression)' failed: \(message)"
        case .tooLarge(let size, let limit): "XML document too large: \(size) bytes, limit \(limit)"
        case .doctypeNotAllowed(let line, let column):
            "XML at line \(line), column \(column): DOCTYPE declarations are not accepted (no DTDs or entity declarations)"
        case .invalidXML(let line, let column, let message): "invalid XML at line \(line), column \(column): \(message)"
        case .tooDeep(let limit, let line): "XML nested deeper than \(limit) levels" + (line > 0 ? " at line \(line)" : "")
        case .tooManyNodes(let limit, let line): "XML document has more than \(limit) elements and attributes (line \(line))"
        case .keyCollision(let key, let path): "XML element \(path): two parts map to the JSON member '\(key)'"
        case .invalidName(let name, let path): "JSON key '\(name)' at \(path) is not a valid XML name"
        case .unrepresentable(let path, let reason): "JSON value at \(path) cannot be converted to XML: \(reason)"
        }
    }
}
