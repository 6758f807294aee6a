#!/usr/bin/env python3
"""Decodes Avro binary with fastavro (an independent implementation) and prints the datum as JSON.
Usage: avro-decode.py SCHEMA_FILE DATA_FILE [REFERENCED_SCHEMA_FILE ...]
bytes/fixed print as lists of byte values; decimals as strings; dates and times in ISO form."""
import datetime, decimal, io, json, sys, uuid
import fastavro

named = {}
for path in sys.argv[3:]:
    fastavro.parse_schema(json.load(open(path)), named_schemas=named)
schema = fastavro.parse_schema(json.load(open(sys.argv[1])), named_schemas=named)
datum = fastavro.schemaless_reader(io.BytesIO(open(sys.argv[2], "rb").read()), schema)

def plain(value):
    if isinstance(value, (bytes, bytearray)): return list(value)
    if isinstance(value, decimal.Decimal): return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)): return value.isoformat()
    if isinstance(value, uuid.UUID): return str(value)
    if isinstance(value, dict): return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list): return [plain(v) for v in value]
    return value

print(json.dumps(plain(datum), sort_keys=True))
