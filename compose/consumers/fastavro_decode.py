"""A downstream consumer of the Haltless topics with fastavro: finds each message's writer schema by the
CRC-64-AVRO fingerprint in its single-object header, reads it with the topic's current schema, and prints
it as one JSON line. Input lines: "<topic> <payload in hex>". Argument: the schemas/avro folder."""

import datetime
import glob
import io
import json
import math
import os
import sys
import uuid

from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def load(path):
    with open(path) as f:
        return parse_schema(json.load(f))


def plain(v):
    """The JSON shape shared with the Rust and Java sides of the test."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, datetime.datetime):
        return (v - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v).replace("inf", "Infinity").replace("nan", "NaN")
    return v


def main(folder):
    writers = {}
    for path in glob.glob(os.path.join(folder, "**", "*.avsc"), recursive=True):
        schema = load(path)
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
        writers[fp] = schema
    readers = {}
    for line in sys.stdin:
        topic, payload = line.split()
        payload = bytes.fromhex(payload)
        if payload[:2] != b"\xc3\x01":
            raise SystemExit(f"not a single-object message: {payload[:2].hex()}")
        writer = writers.get(payload[2:10])
        if writer is None:
            raise SystemExit(f"no schema has the fingerprint {payload[2:10].hex()}")
        if topic not in readers:
            readers[topic] = load(os.path.join(folder, topic + ".avsc"))
        record = schemaless_reader(io.BytesIO(payload[10:]), writer, readers[topic])
        print(json.dumps(plain(record), allow_nan=False), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
