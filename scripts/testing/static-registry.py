#!/usr/bin/env python3
"""A read-only Confluent Schema Registry for benchmarks: serves the schemas of a JSON file.

Usage: static-registry.py PORT SCHEMAS.json
SCHEMAS.json: {"<subject>": {"schemaType": "AVRO"|"JSON", "schema": "<schema text>"}, ...}
Answers GET /subjects/<subject>/versions/<latest|1> and GET /schemas/ids/<id> as Confluent's registry does
(ids are 1, 2, ... in the file's order; every subject has version 1). Everything else is 404 error 40401.
"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

port, path = int(sys.argv[1]), sys.argv[2]
subjects = {}
by_id = {}
for number, (subject, entry) in enumerate(json.load(open(path)).items(), start=1):
    record = {"subject": subject, "version": 1, "id": number, "schema": entry["schema"]}
    if entry.get("schemaType", "AVRO") != "AVRO":
        record["schemaType"] = entry["schemaType"]
    subjects[subject] = record
    by_id[number] = record

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        parts = [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")]
        if len(parts) == 4 and parts[0] == "subjects" and parts[2] == "versions" and parts[1] in subjects \
                and parts[3] in ("latest", "1"):
            return self.answer(200, subjects[parts[1]])
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit() and int(parts[2]) in by_id:
            record = by_id[int(parts[2])]
            return self.answer(200, {k: v for k, v in record.items() if k in ("schema", "schemaType")})
        return self.answer(404, {"error_code": 40401, "message": f"Subject or schema not found: {self.path}"})

ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
