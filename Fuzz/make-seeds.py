#!/usr/bin/env python3
"""Writes the seed corpora (Fuzz/corpus/<target>/) and libFuzzer dictionaries (Fuzz/dictionaries/<target>.dict).

The seeds are small, realistic inputs in each target's layout (see the comment at the top of each
Sources/Fuzz/<target>/*.swift); libFuzzer mutates them. Re-run after changing a target's input layout.
"""
import json, pathlib

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"

def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    directory = ROOT / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)

# --- JSON texts shared by several targets -------------------------------------------------------------------
JSON_TEXTS = {
    "object": '{"id": "o-1", "qty": 3, "n": [1.50, "x", true, false, null], "nested": {"a": {"b": []}}}',
    "numbers": '[0, -0, 1e10, -1.5E-3, 12345678901234567890, 0.1, 1E+2, -9223372036854775808]',
    "escapes": r'"tab\t nl\n quote\" slash\/ back\\ \u00e9 \ud83d\ude00 \u0000"',
    "unicode": '{"name": "J\u00fcrgen \u2603 \U0001F600", "empty": ""}',
    "scalar-true": 'true',
    "scalar-number": ' -12.5e-7 ',
    "empty-containers": '[{}, [], [[]], {"": {}}]',
    "whitespace": ' \t\r\n[ 1 ,\n 2 ]\n',
    "deep": '[' * 40 + ']' * 40,
    "bad-trailing-comma": '[1, 2,]',
    "bad-leading-zero": '01',
    "bad-unterminated": '{"a": "b',
    "bad-control": '"a\x01b"',
    "bad-surrogate": r'"\ud800"',
    "duplicate-keys": '{"a": 1, "a": 2}',
}
for name, text in JSON_TEXTS.items():
    write("FuzzJSONParser", name, text)
write("FuzzJSONParser", "bad-utf8", b'"\xff\xfe"')
write("FuzzJSONParser", "bom", b'\xef\xbb\xbf{}')

# --- Kong envelope: <selector><content type>\n<uri>\n<headers>\n\n<body> --------------------------------------
def kong(selector, content_type, uri, headers, body):
    if isinstance(body, str):
        body = body.encode()
    head = content_type + "\n" + uri + "\n" + "".join(f"{n}: {v}\n" for n, v in headers) + "\n"
    return bytes([selector]) + head.encode() + body

MULTIPART = (b'preamble\r\n--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nHello world\r\n'
             b'--XyZ\r\nContent-Disposition: form-data; name="tag"\r\n\r\na\r\n'
             b'--XyZ\r\nContent-Disposition: form-data; name="doc"; filename="notes.txt"\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n'
             b'--XyZ\r\nContent-Disposition: form-data; name="img"; filename="a;b.png"\r\nContent-Type: image/png\r\n\r\n'
             b'\x89PNG\x00\xff\r\n--XyZ--\r\nepilogue')
KONG = {
    "json": (0x0F, "application/json", "/orders?a=1", [("Content-Type", "application/json"), ("X-Id", "7")], JSON_TEXTS["object"]),
    "json-suffix": (0x0F, "application/vnd.kbridge+json; charset=utf-8", "/t", [], '[1, {"a": "\\u00e9"}]'),
    "json-bad": (0x08, "application/json", "/t", [], '{"a": }'),
    "form": (0x0F, "application/x-www-form-urlencoded", "/f?x=%2F&y", [], "name=J%C3%BCrgen+Smith&tag=a&tag=b&flag&empty="),
    "form-bad-utf8": (0x08, "application/x-www-form-urlencoded", "/f", [], "a=%FF"),
    "multipart": (0x0F, "multipart/form-data; boundary=XyZ", "/upload", [("Content-Type", "multipart/form-data; boundary=XyZ")], MULTIPART),
    "multipart-quoted": (0x08, 'multipart/form-data; boundary="a b"', "/u", [], b'--a b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--a b--'),
    "multipart-truncated": (0x08, "multipart/form-data; boundary=b", "/u", [], b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\ntruncated'),
    "text": (0x0F, "text/plain", "/orders/7?a=1&a=2&flag&e=&sp=x+y&enc=%2Fp", [("X-Multi", "a"), ("x-multi", "b"), ("X-MULTI", "c")], "<a>h\u00e9llo \"x\"\n</a>"),
    "binary": (0x0F, "application/octet-stream", "/b", [], b"\x00\x01\xfe\xff\xc3"),
    "no-content-type": (0x2F, "", "/n", [("Accept", "*/*")], "plain"),
    "xml": (0x4F, "application/soap+xml", "/x", [], "<soap/>"),
    "headers-only": (0x07, "", "/h?q=%E2%82%AC&q=2", [("A", "1"), ("B", ""), ("a", "2")], ""),
}
for name, args in KONG.items():
    write("FuzzKongEnvelope", name, kong(*args))

# --- JSON Schema: <mode><document> (fixed schema mode // 32) or <255><schema>\0<document> -----------------------
ORDER = {"id": "2b9c1c2e-5f6a-4b8e-9d3c-1a2b3c4d5e6f", "email": "a@example.com", "at": "2024-02-29T12:34:56Z",
         "lines": [{"sku": "AB-12", "qty": 2, "price": 9.99}], "tags": ["first", "a", 1], "status": "PAID",
         "discount": "10%", "note": None, "meta": {"x_flag": True}, "shipping": {"method": "post", "address": "x"},
         "card": {"number": "1", "expiry": "2"}, "all": 3}
SCHEMA_DOCS = [
    (0, ORDER), (0, {"id": 1, "lines": [], "extra": True, "all": 0, "discount": 101}),
    (32, {"pair": [1, "n"], "rest": [True, 1, 2], "base": {"a": 1}, "range": 5, "list": [[1]], "bill": "x", "ship": "y", "z": 1}),
    (32, {"pair": [1, ""], "rest": ["x"], "base": {"b": 1}, "range": 10, "z": "s"}),
    (64, {"value": 1, "children": [{"value": "a", "children": []}], "link": {"to": {"value": 2}}}),
    (96, 9), (96, 9223372036854775807), (96, 1.5), (128, None), (160, "ab1"), (160, "127.0.0.1"),
]
for index, (mode, document) in enumerate(SCHEMA_DOCS):
    write("FuzzJSONSchema", f"fixed-{index}", bytes([mode]) + json.dumps(document).encode())
CUSTOM_SCHEMAS = [
    ({"type": "object", "properties": {"a": {"type": "integer", "multipleOf": 7}}, "required": ["a"]}, {"a": 14}),
    ({"$schema": "https://json-schema.org/draft/2020-12/schema", "prefixItems": [{"type": "string"}], "items": {"type": "number"}}, ["a", 1, 2]),
    ({"anyOf": [{"type": "string", "format": "date"}, {"type": "array", "uniqueItems": True}]}, [1, 1.0]),
    ({"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"type": "null"}}, "$ref": "#/definitions/a"}, None),
    ({"patternProperties": {"^[0-9]+$": {"maximum": 3}}, "additionalProperties": False}, {"12": 4}),
    (True, {"anything": [1]}),
    ({"enum": [[1, {"a": None}], "x"], "const": "x"}, "x"),
]
for index, (schema, document) in enumerate(CUSTOM_SCHEMAS):
    write("FuzzJSONSchema", f"custom-{index}", b"\xff" + json.dumps(schema).encode() + b"\x00" + json.dumps(document).encode())

# --- Avro: <even><document> (fixed every-type schema) or <odd><schema>\0<document> -----------------------------
EVERYTHING = {"null": None, "boolean": True, "int": -7, "long": 9007199254740993, "float": 0.5, "double": -1.25e300,
              "bytes": "ab\u00ff", "string": "h\u00e9", "enum": "BLUE", "fixed": "\u0000\u0001\u00fe\u00ff",
              "array": [None, 1, "x", {"long": 2}], "map": {"k": [1.5, 2]}, "optional": {"string": "s"},
              "choice": {"fuzz.avro.Colour": "GREEN"}, "decimalBytes": "-12.3400", "decimalFixed": 1234.5,
              "uuid": "2b9c1c2e-5f6a-4b8e-9d3c-1a2b3c4d5e6f", "date": "2024-02-29", "timeMillis": "09:30:00.123",
              "timeMicros": 1, "timestampMillis": "2024-02-29T12:34:56.789+01:00",
              "timestampMicros": "1970-01-01T00:00:00.000001Z", "localTimestampMillis": "2024-01-01T00:00:00",
              "localTimestampMicros": 0, "tree": {"fuzz.avro.Node": {"label": "root", "children": [{"label": "c"}], "next": None}},
              "money": {"Money": "99.99"}}
write("FuzzAvro", "everything", b"\x00" + json.dumps(EVERYTHING).encode())
minimal = {k: v for k, v in EVERYTHING.items() if k not in ("map", "optional", "tree", "money", "withDefault")}
minimal.update({"choice": 3, "decimalBytes": 0, "decimalFixed": "-0.01", "date": 19000, "timeMillis": 0})
write("FuzzAvro", "minimal", b"\x00" + json.dumps(minimal).encode())
write("FuzzAvro", "mismatches", b"\x00" + json.dumps({"int": 3000000000, "long": 1.5, "enum": "LOST", "fixed": "abc", "uuid": "nope",
                                                          "date": "2024-13-01", "timestampMillis": "2024-01-01T00:00:00", "x": 1}).encode())
AVRO_CUSTOM = [
    ({"type": "record", "name": "U", "fields": [{"name": "a", "type": ["null", "long", "string"]}, {"name": "d", "type": ["string", "null"], "default": "dflt"}]}, {"a": "text"}),
    ({"type": "array", "items": {"type": "map", "values": "int"}}, [{"a": 1}, {}]),
    ({"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 10}, "12345678901234567890.1234567890"),
    ({"type": "fixed", "name": "F", "size": 16, "logicalType": "decimal", "precision": 30, "scale": 3}, -1.5),
    ({"type": "long", "logicalType": "timestamp-micros"}, "9999-12-31T23:59:59.999999Z"),
    ({"type": "enum", "name": "E", "namespace": "n.s", "symbols": ["A", "B"]}, "B"),
    ("string", "plain"),
    (["null", {"type": "record", "name": "R", "fields": [{"name": "r", "type": ["null", "R"]}]}], {"R": {"r": {"R": {"r": None}}}}),
]
for index, (schema, document) in enumerate(AVRO_CUSTOM):
    write("FuzzAvro", f"custom-{index}", b"\x01" + json.dumps(schema).encode() + b"\x00" + json.dumps(document).encode())

# --- Configuration: YAML --------------------------------------------------------------------------------------
repo = pathlib.Path(__file__).resolve().parent.parent
write("FuzzConfiguration", "example", (repo / "examples" / "kbridge.yaml").read_bytes())
CONFIGS = {
    "minimal": "routes:\n  - path: /events\n    topic: events\n",
    "defaults": "server: {host: 127.0.0.1, port: 0, threads: 2}\ndefaults:\n  bootstrap_servers: [{host: k1, port: 9092}, 'k2:9093']\n  forward_headers: true\nroutes:\n  - {path: '/e/{topic}', allowed_topics: [a, b], key_query_arg: key}\n",
    "security": "routes:\n  - path: /s\n    topic: s\n    bootstrap_servers: [b:9093]\n    security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-512\n    sasl_username: u\n    sasl_password: {env: KAFKA_PASSWORD}\n    ssl_ca_location: ca.pem\n",
    "registry": "routes:\n  - path: /avro\n    topic: a\n    schema_registry:\n      url: https://registry:8081\n      value_schema_id: 7\n      basic_auth: {username: u, password: {file: secret.txt}}\n",
    "errors": "server:\n  port: 99999\n  hots: x\nroutes:\n  - path: no-slash\n    topic: 'bad topic'\n    methods: [FETCH]\n    max_body_size: -1\n  - 3\n",
    "anchors": "defaults: &d\n  bootstrap_servers: [k:9092]\nroutes:\n  - &r {path: /a, topic: a}\n  - *r\nextra: *d\n",
    "types": "routes: {path: /x}\nlog_level: [1]\nserver: ~\n",
    "flow": "{routes: [{path: /f, topic: f, producer_async: false, producer_request_acks: -1, producer_compression: zstd}]}",
    "empty": "",
    "tags": "routes:\n  - path: !!str /t\n    topic: !!binary dGVzdA==\n    max_body_size: 0x10\n",
}
for name, text in CONFIGS.items():
    write("FuzzConfiguration", name, text)

# --- HTTP pipeline: <chunk size><raw bytes from the client> ----------------------------------------------------
def http(chunk, text):
    if isinstance(text, str):
        text = text.encode()
    return bytes([chunk]) + text

BODY = JSON_TEXTS["object"]
HTTP = {
    "post-json": (0, f"POST /orders?topics=orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n{BODY}"),
    "post-chunked": (3, "POST /events/clicks?key=k1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    "pipelined": (0, "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\n\r\nPUT /k/views/a%20b HTTP/1.1\r\nContent-Length: 1\r\n\r\nxDELETE /orders HTTP/1.1\r\n\r\n"),
    "form": (7, "POST /orders HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\na=1&b=%20&c"),
    "multipart": (0, b"POST /events/views HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: %d\r\n\r\n" % len(MULTIPART) + MULTIPART),
    "too-large": (0, "POST /orders HTTP/1.1\r\nContent-Length: 100000\r\n\r\nabc"),
    "expect-continue": (0, "POST /orders HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"),
    "not-found": (1, "POST /nowhere HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n"),
    "bad-request": (0, "POST /orders HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
    "garbage": (0, "\x00\x01 not http\r\n\r\n"),
    "forbidden-topic": (0, "POST /events/secret HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
    "bad-json": (0, "POST /orders HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{\"a\":"),
}
for name, (chunk, text) in HTTP.items():
    write("FuzzHTTPPipeline", name, http(chunk, text))

# --- Dictionaries (libFuzzer -dict=): tokens the mutations splice in ---------------------------------------------
def token(word):
    out = ""
    for byte in word.encode():
        if byte in (0x22, 0x5C):
            out += "\\" + chr(byte)
        elif 0x20 <= byte <= 0x7E:
            out += chr(byte)
        else:
            out += "\\x%02x" % byte
    return '"' + out + '"'

JSON_TOKENS = ["{", "}", "[", "]", ",", ":", '"', '\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u", "\\u0000",
               "\\ud83d\\ude00", "\\udc00", "true", "false", "null", "-0", "0.0", "1e308", "1e-400", "E+", "e-",
               "9223372036854775807", "-9223372036854775809", "18446744073709551616", "\ufeff", "\u00e9", "\U0001F600"]
SCHEMA_WORDS = ["$schema", "$id", "$ref", "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "definitions", "type", "properties",
                "required", "additionalProperties", "patternProperties", "propertyNames", "minProperties", "maxProperties", "items",
                "prefixItems", "additionalItems", "unevaluatedItems", "unevaluatedProperties", "contains", "minContains", "maxContains",
                "minItems", "maxItems", "uniqueItems", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                "multipleOf", "minLength", "maxLength", "pattern", "format", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
                "dependencies", "dependentRequired", "dependentSchemas", "object", "array", "string", "number", "integer", "boolean",
                "date-time", "date", "time", "email", "uuid", "ipv4", "ipv6", "uri", "regex", "#/definitions/", "#/$defs/", "#",
                "http://json-schema.org/draft-07/schema#", "https://json-schema.org/draft/2020-12/schema",
                "http://json-schema.org/draft-04/schema#"]
AVRO_WORDS = ["type", "name", "namespace", "fields", "default", "symbols", "items", "values", "size", "logicalType", "precision",
              "scale", "aliases", "record", "enum", "array", "map", "fixed", "null", "boolean", "int", "long", "float", "double",
              "bytes", "string", "decimal", "uuid", "date", "time-millis", "time-micros", "timestamp-millis", "timestamp-micros",
              "local-timestamp-millis", "local-timestamp-micros", "2024-02-29", "T23:59:59.999999", "+14:00", "-23:59", "Z",
              "1970-01-01T00:00:00Z", "9999-12-31", "0000-01-01", "2b9c1c2e-5f6a-4b8e-9d3c-1a2b3c4d5e6f"]
KONG_WORDS = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=", "text/plain",
              "application/xml", "+json", "; charset=utf-8", "\r\n", "--", "Content-Disposition: form-data; name=", "; filename=",
              "Content-Type: ", "%", "%2F", "%C3%A9", "%FF", "+", "&", "=", "?"]
HTTP_WORDS = ["GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", " HTTP/1.1\r\n", " HTTP/1.0\r\n", "\r\n", "\r\n\r\n", "Host: ",
              "Content-Length: ", "Transfer-Encoding: chunked", "Content-Type: ", "Connection: close", "Connection: keep-alive",
              "Expect: 100-continue", "/orders", "/events/clicks", "/events/views", "/k/views/", "/health", "/metrics",
              "?topics=orders,views", "?key=", "0\r\n\r\n", "application/json", "multipart/form-data; boundary=b",
              "application/x-www-form-urlencoded", "text/plain", "%20", "%2F"]
YAML_WORDS = ["routes:", "- path: ", "topic: ", "server:", "defaults:", "host: ", "port: ", "threads: ", "bootstrap_servers:",
              "methods: [", "max_body_size: ", "allowed_topics:", "key_query_arg:", "topics_query_arg:", "forward_method: true",
              "forward_uri: true", "forward_headers: true", "forward_body: false", "producer_async: false",
              "producer_request_acks: -1", "producer_compression:", "security_protocol: SASL_SSL", "sasl_mechanism: SCRAM-SHA-256",
              "sasl_username:", "sasl_password:", "{env: KAFKA_PASSWORD}", "{file: secret}", "ssl_ca_location:", "schema_registry:",
              "url: ", "value_schema_id:", "basic_auth:", "log_level:", "health_path:", "metrics_path:", "&a ", "*a", "<<: ",
              "!!str ", "!!int ", "!!binary ", "---\n", "...\n", "? ", "|\n", "> ", "'", '"', "{", "}", "[", "]", ": ", "\n  ",
              "\n    - ", "~", "null", "0x", "0o", "1e3", ".inf", "{topic}", "{key}"]
# --- FuzzRESP: first byte = flags (1: small limits, 2: prefix check), then what a "server" sent -------------
RESP_REPLIES = {
    "ok": b"+OK\r\n",
    "pong": b"+PONG\r\n",
    "error": b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    "integer": b":-42\r\n",
    "bulk": b'$13\r\n{"token":"x"}\r\n',
    "null-bulk": b"$-1\r\n",
    "empty-bulk": b"$0\r\n\r\n",
    "array": b"*3\r\n$3\r\nfoo\r\n:1\r\n*1\r\n+x\r\n",
    "null-array": b"*-1\r\n",
    "deep": b"*1\r\n" * 12 + b":1\r\n",
    "bad-huge-bulk": b"$9999999999999\r\n",
    "bad-overflow": b":99999999999999999999\r\n",
    "bad-type": b"%1\r\n+a\r\n+b\r\n",
    "bad-bare-lf": b"+OK\n",
    "partial": b"$10\r\nabc",
}
for name, reply in RESP_REPLIES.items():
    write("FuzzRESP", name, b"\x02" + reply)
    write("FuzzRESP", name + "-small", b"\x03" + reply)
RESP_WORDS = ["+OK\r\n", "-ERR ", "$-1\r\n", "*-1\r\n", ":0\r\n", "\r\n", "$", "*", ":", "+", "-", "*1\r\n", "$3\r\nabc\r\n",
              "9223372036854775807", "-9223372036854775808", "16777216"]

DICTIONARIES = {
    "FuzzJSONParser": JSON_TOKENS,
    "FuzzJSONSchema": JSON_TOKENS + ['"%s"' % w for w in SCHEMA_WORDS],
    "FuzzAvro": JSON_TOKENS + ['"%s"' % w for w in AVRO_WORDS],
    "FuzzKongEnvelope": JSON_TOKENS + KONG_WORDS,
    "FuzzHTTPPipeline": HTTP_WORDS,
    "FuzzConfiguration": YAML_WORDS,
    "FuzzRESP": RESP_WORDS,
}
DICTIONARY_DIR = pathlib.Path(__file__).resolve().parent / "dictionaries"
DICTIONARY_DIR.mkdir(exist_ok=True)
for target, words in DICTIONARIES.items():
    (DICTIONARY_DIR / f"{target}.dict").write_text("".join(token(w) + "\n" for w in words))
