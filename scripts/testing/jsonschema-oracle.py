#!/usr/bin/env python3
"""A second oracle for kbridge's JSON Schema validator: Python's jsonschema (an independent implementation).
Reads JSON lines {"schema": ..., "instance": ...} on stdin and prints one verdict per line: "valid" or "invalid"
(or "error: <reason>" when the schema cannot be used).

Numbers with a fraction or exponent are read as decimal.Decimal, so that comparisons and multipleOf are exact
(as kbridge's are), and integral decimals (1.0, 1e2) count as integers, as drafts 6 and later say.
The draft comes from $schema; draft 7 (Confluent's default) when there is none."""
import decimal, json, sys
import jsonschema
from jsonschema import validators


def is_integer(checker, instance):
    if isinstance(instance, bool):
        return False
    if isinstance(instance, int):
        return True
    if isinstance(instance, decimal.Decimal):
        return instance.is_finite() and instance == instance.to_integral_value()
    return isinstance(instance, float) and instance.is_integer()


cache = {}


def validator_for(schema):
    key = json.dumps(schema, sort_keys=True, default=str)
    if key not in cache:
        base = validators.validator_for(schema, default=jsonschema.Draft7Validator)
        base.check_schema(schema)
        extended = validators.extend(base, type_checker=base.TYPE_CHECKER.redefine("integer", is_integer))
        cache[key] = extended(schema)
    return cache[key]


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        case = json.loads(line, parse_float=decimal.Decimal)
        verdict = "valid" if validator_for(case["schema"]).is_valid(case["instance"]) else "invalid"
    except Exception as error:  # noqa: BLE001 - reported to the caller
        verdict = "error: " + str(error).splitlines()[0]
    print(verdict, flush=False)
sys.stdout.flush()
