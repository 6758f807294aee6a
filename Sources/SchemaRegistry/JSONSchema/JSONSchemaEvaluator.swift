import JSON

extension JSONSchemaValidator {
    /// What a (valid) schema evaluated, for `unevaluatedProperties` / `unevaluatedItems`; collected only when the
    /// schema uses one of them.
    struct Annotations {
        /// nil until a property or item is recorded (so that the many evaluations that record none cost nothing).
        private(set) var properties: Set<String>?
        private(set) var items: Set<Int>?
        var allItems = false

        mutating func insert(property name: String) {
            if properties == nil { properties = [name] } else { properties!.insert(name) }
        }

        mutating func insert(item position: Int) {
            if items == nil { items = [position] } else { items!.insert(position) }
        }

        func contains(property name: String) -> Bool { properties?.contains(name) == true }
        func contains(item position: Int) -> Bool { items?.contains(position) == true }

        mutating func merge(_ other: Annotations) {
            if let names = other.properties { if properties == nil { properties = names } else { properties!.formUnion(names) } }
            if let positions = other.items { if items == nil { items = positions } else { items!.formUnion(positions) } }
            allItems = allItems || other.allItems
        }
    }

    /// One step of the path from the document's root to the value being validated.
    enum PathComponent {
        case key(String)
        case index(Int)
    }

    /// One validation of one document against the compiled schema: the violations found, the bounds used, the
    /// path to the current value (written out as text only when a violation is reported), the dynamic scope.
    struct Evaluator {
        let targets: [SchemaNode]
        let tracksAnnotations: Bool
        let tracksDynamicScope: Bool
        /// Whether the path to the current value is kept (for reporting violations); a first, quiet pass over
        /// a document that is usually valid does without.
        let tracksPath: Bool
        let limit: Int
        let document: JSONValue
        private(set) var violations: [JSONSchemaViolation] = []
        private var evaluations = 0
        /// Evaluations allowed; computed (from the document's size) only once the fixed allowance is used up.
        private var evaluationBudget: Int?
        /// Set when a bound was hit: evaluation stops everywhere and the document is invalid.
        private(set) var aborted: JSONSchemaViolation?
        private(set) var isAborted = false
        private var path: [PathComponent] = []
        /// Resources (by number) entered so far, outermost first, for `$dynamicRef`.
        private var dynamicScope: [Int]

        init(validator: JSONSchemaValidator, document: JSONValue, limit: Int, tracksPath: Bool) {
            self.tracksPath = tracksPath
            targets = validator.targets
            tracksAnnotations = validator.tracksAnnotations
            tracksDynamicScope = validator.tracksDynamicScope
            self.limit = limit
            self.document = document
            dynamicScope = [validator.root.resource]
            if tracksPath { path.reserveCapacity(16) }
        }

        /// `$`, `$.order.items[2].qty`, `$["odd key"]`.
        var pathText: String {
            var text = "$"
            for component in path {
                switch component {
                case .key(let name): text = Context.childPath(text, name)
                case .index(let position): text += "[\(position)]"
                }
            }
            return text
        }

        private mutating func report(_ keyword: String, _ reason: () -> String) {
            if violations.count < limit { violations.append(JSONSchemaViolation(path: pathText, keyword: keyword, reason: reason())) }
        }

        /// Marks the evaluation invalid and, when violations are collected here, reports one.
        private mutating func fail(_ valid: inout Bool, _ collect: Bool, _ keyword: String, _ reason: @autoclosure () -> String) {
            valid = false
            if collect { report(keyword, reason) }
        }

        /// The same, for the member `name` of the current object.
        private mutating func fail(_ valid: inout Bool, _ collect: Bool, member name: String, _ keyword: String, _ reason: @autoclosure () -> String) {
            valid = false
            guard collect else { return }
            path.append(.key(name))
            report(keyword, reason)
            path.removeLast()
        }

        private mutating func budget() -> Int {
            if let evaluationBudget { return evaluationBudget }
            let (perValue, overflow) = JSONSchemaValidator.evaluationsPerValue.multipliedReportingOverflow(by: document.nodeCount)
            let (total, overflow2) = JSONSchemaValidator.baseEvaluations.addingReportingOverflow(perValue)
            let budget = overflow || overflow2 ? Int.max : total
            evaluationBudget = budget
            return budget
        }

        // MARK: Evaluation

        /// Evaluates `instance` against `node`; true when it is valid, with what it evaluated added to
        /// `annotations` (when annotations are tracked). Violations are reported only when `collect` is true
        /// (branches of anyOf, oneOf, not, if, contains and propertyNames are quiet).
        mutating func evaluate(_ instance: JSONValue, _ node: SchemaNode, collect: Bool, depth: Int, annotations: inout Annotations) -> Bool {
            guard !isAborted else { return false }
            evaluations += 1
            if evaluations > JSONSchemaValidator.baseEvaluations {
                let budget = budget()
                guard evaluations <= budget else {
                    isAborted = true
                    aborted = JSONSchemaViolation(path: pathText, keyword: "limit",
                                                  reason: "the document needs more than \(budget) schema evaluations (nested anyOf/oneOf of recursive schemas)")
                    return false
                }
            }
            guard depth < JSONSchemaValidator.maximumEvaluationDepth else {
                isAborted = true
                aborted = JSONSchemaViolation(path: pathText, keyword: "depth",
                                              reason: "validation nests deeper than \(JSONSchemaValidator.maximumEvaluationDepth) subschemas here")
                return false
            }
            switch node.kind {
            case .anything: return true
            case .nothing:
                if collect { report("false") { "no value is allowed here" } }
                return false
            case .keywords:
                // A schema of only `type` (most leaves): decided here when the type matches.
                if let types = node.onlyTypes, !types.isDisjoint(with: SchemaNode.TypeSet(of: instance)) { return true }
                // Entering a new resource extends the dynamic scope.
                let entersResource = tracksDynamicScope && dynamicScope.last != node.resource
                if entersResource { dynamicScope.append(node.resource) }
                defer { if entersResource { dynamicScope.removeLast() } }
                if !tracksAnnotations { return run(instance, node, collect: collect, depth: depth, annotations: &annotations) }
                var own = Annotations()
                let valid = run(instance, node, collect: collect, depth: depth, annotations: &own)
                if valid { annotations.merge(own) }
                return valid
            }
        }

        /// A subschema applied to a member or item of the current value.
        private mutating func evaluate(_ instance: JSONValue, _ node: SchemaNode, at component: PathComponent, collect: Bool, depth: Int) -> Bool {
            // A matching type-only leaf, within the bounds: what the full evaluation below would conclude, sooner.
            if let types = node.onlyTypes, !isAborted, evaluations < JSONSchemaValidator.baseEvaluations,
               depth + 1 < JSONSchemaValidator.maximumEvaluationDepth, !types.isDisjoint(with: SchemaNode.TypeSet(of: instance)) {
                evaluations += 1
                return true
            }
            var discarded = Annotations()
            guard tracksPath else { return evaluate(instance, node, collect: collect, depth: depth + 1, annotations: &discarded) }
            path.append(component)
            defer { path.removeLast() }
            return evaluate(instance, node, collect: collect, depth: depth + 1, annotations: &discarded)
        }

        /// A subschema applied to the current value; its annotations join this schema's when it is valid.
        private mutating func evaluateInPlace(_ instance: JSONValue, _ node: SchemaNode, collect: Bool, depth: Int, annotations: inout Annotations) -> Bool {
            evaluate(instance, node, collect: collect, depth: depth + 1, annotations: &annotations)
        }

        /// A subschema applied to the current value without reporting violations (quiet branches).
        private mutating func matchesQuietly(_ instance: JSONValue, _ node: SchemaNode, depth: Int, annotations: inout Annotations) -> Bool {
            var own = Annotations()
            let matched = evaluate(instance, node, collect: false, depth: depth + 1, annotations: &own)
            if matched, tracksAnnotations { annotations.merge(own) }
            return matched
        }

        private mutating func follow(_ reference: SchemaNode.Reference, _ instance: JSONValue, collect: Bool, depth: Int,
                                     valid: inout Bool, annotations: inout Annotations) {
            switch reference {
            case .resolved(let position):
                if !evaluateInPlace(instance, targets[position], collect: collect, depth: depth, annotations: &annotations) { valid = false }
            case .unresolved(let keyword, let written):
                fail(&valid, collect, keyword, "the schema's \(keyword) '\(written)' resolves to nothing")
            }
        }

        private mutating func run(_ instance: JSONValue, _ node: SchemaNode, collect: Bool, depth: Int, annotations: inout Annotations) -> Bool {
            var valid = true
            if let reference = node.reference {
                follow(reference, instance, collect: collect, depth: depth, valid: &valid, annotations: &annotations)
                if node.referenceHidesSiblings { return valid }
            }
            if let dynamic = node.dynamicReference {
                var reference = dynamic.target
                if !dynamic.targetsByResource.isEmpty {
                    for resource in dynamicScope {
                        if let position = dynamic.targetsByResource[resource] {
                            reference = .resolved(position)
                            break
                        }
                    }
                }
                follow(reference, instance, collect: collect, depth: depth, valid: &valid, annotations: &annotations)
            }
            if let reference = node.recursiveReference {
                follow(reference, instance, collect: collect, depth: depth, valid: &valid, annotations: &annotations)
            }
            if let types = node.types, types.isDisjoint(with: SchemaNode.TypeSet(of: instance)) {
                fail(&valid, collect, "type", "expected \(node.typeNames.joined(separator: " or ")), got \(instance.typeName)\(Context.preview(instance))")
            }
            if node.enumValues != nil || node.constValue != nil { enumAndConst(instance, node, collect: collect, valid: &valid) }
            switch instance {
            case .number(let number):
                if let bounds = node.numeric { numeric(number, bounds, collect: collect, valid: &valid) }
            case .string(let string):
                if let bounds = node.string { text(string, bounds, patternText: node.patternText, collect: collect, valid: &valid) }
            case .array(let array):
                if let keywords = node.array {
                    items(array, keywords, collect: collect, depth: depth, valid: &valid, annotations: &annotations)
                }
            case .object(let object):
                if let keywords = node.object {
                    properties(object, instance, keywords, collect: collect, depth: depth, valid: &valid, annotations: &annotations)
                }
            default: break
            }
            if let applicators = node.applicators {
                apply(applicators, instance, collect: collect, depth: depth, valid: &valid, annotations: &annotations)
            }
            if let unevaluated = node.unevaluatedItems, case .array(let array) = instance {
                unevaluatedItems(array, unevaluated, collect: collect, depth: depth, valid: &valid, annotations: &annotations)
            }
            if let unevaluated = node.unevaluatedProperties, case .object(let object) = instance {
                unevaluatedProperties(object, unevaluated, collect: collect, depth: depth, valid: &valid, annotations: &annotations)
            }
            return valid
        }

        // MARK: Any type

        private mutating func enumAndConst(_ instance: JSONValue, _ node: SchemaNode, collect: Bool, valid: inout Bool) {
            if let options = node.enumValues, !options.contains(where: { $0.jsonEquals(instance) }) {
                fail(&valid, collect, "enum", "\(Context.preview(instance, bare: true)) is not one of \(options.prefix(10).map { Context.preview($0, bare: true) }.joined(separator: ", "))")
            }
            if let constant = node.constValue, !constant.jsonEquals(instance) {
                fail(&valid, collect, "const", "must be \(Context.preview(constant, bare: true))")
            }
        }

        // MARK: Numbers

        /// Exact comparisons (no rounding through `Double`), linear in the numbers' texts, which the parser bounds.
        private mutating func numeric(_ number: JSONNumber, _ shared: SchemaNode.Shared<SchemaNode.NumericBounds>, collect: Bool, valid: inout Bool) {
            func shown() -> String { Context.abbreviated(number.text) }
            if let divisor = shared.value.multipleOf, !number.isMultiple(of: divisor) {
                fail(&valid, collect, "multipleOf", "\(shown()) is not a multiple of \(Context.abbreviated(divisor.text))")
            }
            if let maximum = shared.value.maximum {
                let exclusive = shared.value.maximumIsExclusive
                let order = JSONNumber.compare(number, maximum)
                if exclusive ? order >= 0 : order > 0 {
                    fail(&valid, collect, "maximum", "\(shown()) is greater than \(exclusive ? "or equal to " : "")\(Context.format(maximum))")
                }
            }
            if let minimum = shared.value.minimum {
                let exclusive = shared.value.minimumIsExclusive
                let order = JSONNumber.compare(number, minimum)
                if exclusive ? order <= 0 : order < 0 {
                    fail(&valid, collect, "minimum", "\(shown()) is less than \(exclusive ? "or equal to " : "")\(Context.format(minimum))")
                }
            }
            if let maximum = shared.value.exclusiveMaximum, JSONNumber.compare(number, maximum) >= 0 {
                fail(&valid, collect, "exclusiveMaximum", "\(shown()) is not less than \(Context.format(maximum))")
            }
            if let minimum = shared.value.exclusiveMinimum, JSONNumber.compare(number, minimum) <= 0 {
                fail(&valid, collect, "exclusiveMinimum", "\(shown()) is not greater than \(Context.format(minimum))")
            }
        }

        // MARK: Strings

        private mutating func text(_ string: String, _ shared: SchemaNode.Shared<SchemaNode.StringBounds>, patternText: String, collect: Bool, valid: inout Bool) {
            if shared.value.maxLength != nil || shared.value.minLength != nil {
                let length = string.unicodeScalars.count
                if let maximum = shared.value.maxLength, Double(length) > maximum {
                    fail(&valid, collect, "maxLength", "is \(length) characters long, more than \(Context.format(maximum))")
                }
                if let minimum = shared.value.minLength, Double(length) < minimum {
                    fail(&valid, collect, "minLength", "is \(length) characters long, fewer than \(Context.format(minimum))")
                }
            }
            if let regex = shared.value.pattern, !regex.matches(string) {
                fail(&valid, collect, "pattern", "does not match the pattern \(patternText)")
            }
        }

        // MARK: Arrays

        private mutating func items(_ array: [JSONValue], _ shared: SchemaNode.Shared<SchemaNode.ArrayKeywords>, collect: Bool, depth: Int,
                                    valid: inout Bool, annotations: inout Annotations) {
            if let maximum = shared.value.maxItems, Double(array.count) > maximum {
                fail(&valid, collect, "maxItems", "has \(array.count) items, more than \(Context.format(maximum))")
            }
            if let minimum = shared.value.minItems, Double(array.count) < minimum {
                fail(&valid, collect, "minItems", "has \(array.count) items, fewer than \(Context.format(minimum))")
            }
            if shared.value.uniqueItems, let (first, second) = Context.firstRepeat(in: array) {
                fail(&valid, collect, "uniqueItems", "items \(first) and \(second) are equal")
            }
            if !shared.value.prefix.isEmpty || shared.value.rest != nil {
                for (position, item) in array.enumerated() {
                    if position < shared.value.prefix.count {
                        if !evaluate(item, shared.value.prefix[position], at: .index(position), collect: collect, depth: depth) { valid = false }
                        if tracksAnnotations { annotations.insert(item: position) }
                    } else if let rest = shared.value.rest {
                        if !evaluate(item, rest, at: .index(position), collect: collect, depth: depth) { valid = false }
                        annotations.allItems = true
                    }
                    if !collect && !valid { return }
                }
            }
            if let contains = shared.value.contains {
                var matches = 0
                for (position, item) in array.enumerated() {
                    if evaluate(item, contains, at: .index(position), collect: false, depth: depth) {
                        matches += 1
                        if shared.value.containsAnnotates, tracksAnnotations { annotations.insert(item: position) }
                    }
                }
                if Double(matches) < shared.value.minContains {
                    fail(&valid, collect, "contains", matches == 0 ? "no item matches the 'contains' schema"
                        : "\(matches) items match the 'contains' schema, fewer than \(Context.format(shared.value.minContains))")
                }
                if let maximum = shared.value.maxContains, Double(matches) > maximum {
                    fail(&valid, collect, "maxContains", "\(matches) items match the 'contains' schema, more than \(Context.format(maximum))")
                }
            }
        }

        private mutating func unevaluatedItems(_ array: [JSONValue], _ unevaluated: SchemaNode, collect: Bool, depth: Int,
                                               valid: inout Bool, annotations: inout Annotations) {
            guard !annotations.allItems else { return }
            for (position, item) in array.enumerated() where !annotations.contains(item: position) {
                if case .nothing = unevaluated.kind {
                    valid = false
                    if collect {
                        path.append(.index(position))
                        report("unevaluatedItems") { "no item is allowed here" }
                        path.removeLast()
                    }
                } else if !evaluate(item, unevaluated, at: .index(position), collect: collect, depth: depth) {
                    valid = false
                }
            }
            annotations.allItems = true
        }

        // MARK: Objects

        private mutating func properties(_ object: JSONObject, _ instance: JSONValue, _ shared: SchemaNode.Shared<SchemaNode.ObjectKeywords>,
                                         collect: Bool, depth: Int, valid: inout Bool, annotations: inout Annotations) {
            if let maximum = shared.value.maxProperties, Double(object.count) > maximum {
                fail(&valid, collect, "maxProperties", "has \(object.count) properties, more than \(Context.format(maximum))")
            }
            if let minimum = shared.value.minProperties, Double(object.count) < minimum {
                fail(&valid, collect, "minProperties", "has \(object.count) properties, fewer than \(Context.format(minimum))")
            }
            // Collecting, missing properties are reported first, in the order of `required`. Otherwise they are
            // counted in the pass over the members: the members' names are different, so fewer required members
            // than required names means one is missing.
            if collect {
                for name in shared.value.required where object[name] == nil {
                    fail(&valid, collect, "required", "required property '\(name)' is missing")
                }
            }
            let table = shared.value.table  // a reference
            let countsRequired = !collect && table.requiredCount > 0
            if shared.value.visitsMembers || countsRequired {
                var requiredPresent = 0
                var hint = 0
                for (name, value) in object {
                    var matched = false
                    if let position = table.position(of: name, from: hint) {
                        hint = position + 1
                        if table.isRequired[position] { requiredPresent += 1 }
                        if let property = table.nodes[position] {
                            matched = true
                            if !evaluate(value, property, at: .key(name), collect: collect, depth: depth) { valid = false }
                        }
                    }
                    for (pattern, property) in shared.value.patternProperties where pattern.matches(name) {
                        matched = true
                        if !evaluate(value, property, at: .key(name), collect: collect, depth: depth) { valid = false }
                    }
                    if matched {
                        if tracksAnnotations { annotations.insert(property: name) }
                    } else if shared.value.additionalPropertiesIsFalse {
                        if tracksAnnotations { annotations.insert(property: name) }
                        fail(&valid, collect, member: name, "additionalProperties", "property '\(name)' is not allowed")
                    } else if let additional = shared.value.additionalProperties {
                        if tracksAnnotations { annotations.insert(property: name) }
                        if !evaluate(value, additional, at: .key(name), collect: collect, depth: depth) { valid = false }
                    }
                    if let names = shared.value.propertyNames, !evaluate(.string(name), names, at: .key(name), collect: false, depth: depth) {
                        fail(&valid, collect, member: name, "propertyNames", "the property name '\(name)' does not match 'propertyNames'")
                    }
                    if !collect && !valid { return }
                }
                if countsRequired && requiredPresent < table.requiredCount {
                    valid = false
                    return
                }
            }
            // dependencies (drafts 4-7), dependentRequired and dependentSchemas (2019-09 and later).
            for (name, names) in shared.value.dependentRequired where object[name] != nil {
                for missing in names where object[missing] == nil {
                    fail(&valid, collect, "dependentRequired", "property '\(missing)' is required when '\(name)' is present")
                }
            }
            for (name, dependent) in shared.value.dependentSchemas where object[name] != nil {
                if !evaluateInPlace(instance, dependent, collect: collect, depth: depth, annotations: &annotations) { valid = false }
            }
        }

        private mutating func unevaluatedProperties(_ object: JSONObject, _ unevaluated: SchemaNode, collect: Bool, depth: Int,
                                                    valid: inout Bool, annotations: inout Annotations) {
            for (name, value) in object where !annotations.contains(property: name) {
                if case .nothing = unevaluated.kind {
                    fail(&valid, collect, member: name, "unevaluatedProperties", "property '\(name)' is not allowed")
                } else if !evaluate(value, unevaluated, at: .key(name), collect: collect, depth: depth) {
                    valid = false
                }
                annotations.insert(property: name)
            }
        }

        // MARK: Applicators

        private mutating func apply(_ shared: SchemaNode.Shared<SchemaNode.Applicators>, _ instance: JSONValue, collect: Bool, depth: Int,
                                    valid: inout Bool, annotations: inout Annotations) {
            for member in shared.value.allOf where !evaluateInPlace(instance, member, collect: collect, depth: depth, annotations: &annotations) {
                valid = false
            }
            if let members = shared.value.anyOf {
                var any = false
                for member in members where matchesQuietly(instance, member, depth: depth, annotations: &annotations) { any = true }
                if !any { fail(&valid, collect, "anyOf", "matches none of the \(members.count) schemas of 'anyOf'\(Context.preview(instance))") }
            }
            if let members = shared.value.oneOf {
                var matching: [Int] = []
                for (position, member) in members.enumerated() where matchesQuietly(instance, member, depth: depth, annotations: &annotations) {
                    matching.append(position)
                }
                if matching.count != 1 {
                    fail(&valid, collect, "oneOf", matching.isEmpty ? "matches none of the \(members.count) schemas of 'oneOf'"
                        : "matches \(matching.count) schemas of 'oneOf' (\(matching.map(String.init).joined(separator: ", "))), not exactly one")
                }
            }
            if let negated = shared.value.not {
                var discarded = Annotations()
                // An aborted evaluation is no match, but the document is refused anyway (the bound's violation says why).
                if evaluate(instance, negated, collect: false, depth: depth + 1, annotations: &discarded) {
                    fail(&valid, collect, "not", "matches the schema of 'not'")
                }
            }
            if let condition = shared.value.condition {
                let consequence = matchesQuietly(instance, condition, depth: depth, annotations: &annotations) ? shared.value.then : shared.value.otherwise
                if let consequence, !evaluateInPlace(instance, consequence, collect: collect, depth: depth, annotations: &annotations) {
                    valid = false
                }
            }
        }
    }
}
