"""Checks compose/docker-compose.yml without a Docker engine: valid YAML, known top-level keys, every
service has an image or a build and a health check (or opts out), and every dependency names a service."""
import sys

import yaml

path = sys.argv[1]
with open(path) as f:
    doc = yaml.safe_load(f)
errors = []
allowed = {"name", "services", "volumes", "networks", "configs", "secrets"}
for key in doc:
    if key not in allowed and not key.startswith("x-"):
        errors.append(f"unknown top-level key {key!r}")
services = doc.get("services") or {}
required = {"kafka", "timescaledb", "redis", "gateway", "api", "projection"}
errors += [f"missing service {s!r}" for s in sorted(required - services.keys())]
for name, svc in services.items():
    if "image" not in svc and "build" not in svc:
        errors.append(f"{name}: neither image nor build")
    if "healthcheck" not in svc:
        errors.append(f"{name}: no healthcheck")
    deps = svc.get("depends_on") or {}
    for dep in deps:
        if dep not in services:
            errors.append(f"{name}: depends on unknown service {dep!r}")
    for vol in svc.get("volumes") or []:
        source = vol.split(":")[0]
        if not source.startswith((".", "/")) and source not in (doc.get("volumes") or {}):
            errors.append(f"{name}: undeclared volume {source!r}")
if errors:
    print("\n".join(f"{path}: {e}" for e in errors), file=sys.stderr)
    sys.exit(1)
print(f"{path}: {len(services)} services OK")
