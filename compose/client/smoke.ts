// A smoke test of a client generated from the platform's OpenAPI document: `schema.d.ts` comes from
// openapi-typescript, requests go through openapi-fetch, and `tsc --strict` checks that every field read
// below exists in the document with the type used. Run by ./smoke (compose/api-fuzz runs it).
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type ErrorBody = components["schemas"]["ErrorBody"];

// Node's globals, declared here rather than through @types/node (one dependency fewer).
declare const process: { argv: string[] };

const [baseUrl, email, password] = process.argv.slice(2);
if (!baseUrl || !email || !password) {
  throw new Error("usage: node smoke.js URL EMAIL PASSWORD");
}

function check(ok: unknown, what: string): asserts ok {
  if (!ok) {
    throw new Error(`smoke: ${what}`);
  }
}

function errorShape(body: ErrorBody | undefined, status: number, code: string): void {
  check(body !== undefined, `${status}: an error body`);
  check(typeof body.error.code === "string" && body.error.code === code, `${status}: code ${code}, got ${JSON.stringify(body)}`);
  check(typeof body.error.message === "string" && body.error.message.length > 0, `${status}: a message`);
}

const anonymous = createClient<paths>({ baseUrl });

// 401: no credentials.
{
  const { data, error, response } = await anonymous.GET("/api/v1/machines");
  check(response.status === 401 && data === undefined, `GET /machines without credentials answers 401, got ${response.status}`);
  errorShape(error, 401, "unauthorized");
}

// Sign in.
const login = await anonymous.POST("/api/v1/auth/login", { body: { email, password } });
check(login.data, `login: ${login.response.status} ${JSON.stringify(login.error)}`);
const tokens = login.data;
check(tokens.token_type === "Bearer" && tokens.expires_in > 0, "login: a bearer token");
const role: "admin" | "operator" | "viewer" = tokens.user.role;
check(role === "admin", `login: an admin, got ${role}`);

const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${tokens.access_token}` } });

// A machine.
const name = `smoke-${Date.now()}`;
const created = await api.POST("/api/v1/machines", { body: { name, tags: ["smoke"], site: "lab" } });
check(created.data, `create machine: ${created.response.status} ${JSON.stringify(created.error)}`);
const machine = created.data;
check(machine.name === name && machine.status === "active" && machine.retired_at === null, "the machine as created");
check(machine.tags.includes("smoke") && machine.site === "lab", "the machine's tags and site");

// 422: an invalid name, with the uniform error body.
{
  const { error, response } = await api.POST("/api/v1/machines", { body: { name: "no spaces allowed" } });
  check(response.status === 422, `an invalid name answers 422, got ${response.status}`);
  errorShape(error, 422, "validation_failed");
}

// An API key for ingest and reads, restricted to the machine.
const keyAnswer = await api.POST("/api/v1/api-keys", {
  body: { name: "smoke", scopes: ["ingest", "read"], machines: [name] },
});
check(keyAnswer.data, `create key: ${keyAnswer.response.status} ${JSON.stringify(keyAnswer.error)}`);
const secret: string | undefined = keyAnswer.data.secret;
check(secret, "the new key's secret");
check(keyAnswer.data.revoked_at === null && (keyAnswer.data.machines ?? []).includes(name), "the key as created");
const withKey = createClient<paths>({ baseUrl, headers: { "X-API-Key": secret } });

// Readings through the key.
const now = Date.now();
const readings = [0, 1, 2, 3, 4].map((i) => ({
  machine: name,
  metric: "temp",
  ts: new Date(now - (5 - i) * 1000).toISOString(),
  value: 70 + i,
  quality: "good" as const,
}));
const ingest = await withKey.POST("/api/v1/ingest", { body: { readings } });
check(ingest.data, `ingest: ${ingest.response.status} ${JSON.stringify(ingest.error)}`);
check(ingest.response.status === 202 && ingest.data.accepted === readings.length, `ingest: ${ingest.data.accepted} accepted`);

// A rule with a nested condition tree.
const rule = await api.POST("/api/v1/rules", {
  body: {
    rule: {
      name: "smoke: hot and shaking, or very hot",
      severity: "warning",
      when: {
        any: [
          { all: [{ metric: "temp", detector: "above", value: 90 }, { metric: "vib", detector: "above", value: 5 }] },
          { metric: "temp", detector: "above", value: 120 },
        ],
      },
    },
    machines: [name],
  },
});
check(rule.data, `create rule: ${rule.response.status} ${JSON.stringify(rule.error)}`);
const ruleId: string = rule.data.id;
check(rule.data.version === 1 && rule.data.machines.includes(name), "the rule as created");
const tree = rule.data.rule.when;
check("any" in tree && tree.any.length === 2, `the rule's tree comes back: ${JSON.stringify(tree)}`);

// The readings back through the bucketed readings API (with the key), once projected.
let buckets: components["schemas"]["BucketView"][] = [];
for (let attempt = 0; attempt < 60 && buckets.length === 0; attempt++) {
  const { data, error } = await withKey.GET("/api/v1/machines/{machine}/readings", {
    params: { path: { machine: name }, query: { metric: "temp", bucket: "1m", from: new Date(now - 3_600_000).toISOString() } },
  });
  check(data, `readings: ${JSON.stringify(error)}`);
  check("buckets" in data, "bucketed readings");
  check(data.bucket_seconds === 60, `bucket_seconds ${data.bucket_seconds}`);
  buckets = data.buckets;
  if (buckets.length === 0) {
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
const seen = buckets.reduce((n, b) => n + b.count, 0);
check(seen === readings.length, `the buckets hold every reading: ${JSON.stringify(buckets)}`);
check(buckets.every((b) => b.metric === "temp" && b.min >= 70 && b.max <= 74), "the buckets' values");

// Lists.
const rules = await api.GET("/api/v1/rules");
check(rules.data?.rules.some((r) => r.id === ruleId), "the rule list has the rule");
const machines = await api.GET("/api/v1/machines", { params: { query: { tag: "smoke" } } });
check(machines.data?.machines.some((m) => m.name === name), "the machine list has the machine");
const alerts = await api.GET("/api/v1/alerts", { params: { query: { machine: name, limit: 10 } } });
check(alerts.data && Array.isArray(alerts.data.alerts), "the alert list");
for (const a of alerts.data.alerts) {
  check(typeof a.explanation === "string" && a.contributions.every((c) => typeof c.score === "number"), "an alert's shape");
}
const fleet = await api.GET("/api/v1/fleet/status");
check(fleet.data && fleet.data.counts.total >= 1, "the fleet status");

// A key restricted to the machine sees nothing else: 404 with the uniform body.
{
  const { error, response } = await withKey.GET("/api/v1/machines/{machine}", { params: { path: { machine: "m-1" } } });
  check(response.status === 404 || response.status === 403, `another machine through the restricted key: ${response.status}`);
  check(error !== undefined && typeof error.error.code === "string", "its error body");
}

console.log(`client smoke test passed: machine ${name}, rule ${ruleId}, ${seen} readings in ${buckets.length} bucket(s)`);
