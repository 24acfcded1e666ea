import assert from "node:assert/strict";
import { freePort } from "../../dev/ports.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";

/** What an OTLP/HTTP receiver got, by signal. */
interface Received {
  logs: Array<Record<string, unknown>>;
  spans: Array<Record<string, unknown>>;
  metrics: string[];
}

/** A local OTLP/HTTP (JSON) receiver, as a collector would listen. */
function startReceiver(port: number): Deno.HttpServer & { got: Received } {
  const got: Received = { logs: [], spans: [], metrics: [] };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen() {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      const body = await request.json();
      if (path === "/v1/logs") {
        for (const r of body.resourceLogs ?? []) {
          for (const s of r.scopeLogs ?? []) got.logs.push(...s.logRecords);
        }
      } else if (path === "/v1/traces") {
        for (const r of body.resourceSpans ?? []) {
          for (const s of r.scopeSpans ?? []) got.spans.push(...s.spans);
        }
      } else if (path === "/v1/metrics") {
        for (const r of body.resourceMetrics ?? []) {
          for (const s of r.scopeMetrics ?? []) {
            got.metrics.push(...s.metrics.map((m: { name: string }) => m.name));
          }
        }
      }
      return Response.json({});
    },
  );
  return Object.assign(server, { got });
}

/** The text of a log record's body. */
const text = (record: Record<string, unknown>) =>
  String((record.body as { stringValue?: string })?.stringValue ?? "");

Deno.test("OTEL_DENO=true: logs with their levels, a span per request and metrics reach an OTLP/HTTP receiver", async () => {
  const port = freePort();
  await using receiver = startReceiver(port);
  // The production permissions (startServer uses the start task's flags):
  // the runtime exports on its own, no extra flag is needed.
  await using server = await startServer({
    env: {
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_SERVICE_NAME: "ws-time",
      OTEL_METRIC_EXPORT_INTERVAL: "500",
      OTEL_BSP_SCHEDULE_DELAY: "200",
      OTEL_BLRP_SCHEDULE_DELAY: "200",
      LOG_CONNECTIONS: "on",
    },
  });
  const health = await fetch(`${server.http}/healthcheck`);
  await health.body?.cancel();
  await using socket = new RecordingSocket(server.ws, "ws-time.v1");
  await socket.waitForMessages(1);
  socket.socket.close(1000);
  await socket.closed;

  const { got } = receiver;
  await waitFor(
    () =>
      got.logs.some((r) => /listening on/.test(text(r))) &&
      got.logs.some((r) => /network probe off/.test(text(r))) &&
      got.logs.some((r) => /disconnect/.test(text(r))) &&
      got.spans.some((s) => JSON.stringify(s).includes("/healthcheck")) &&
      got.metrics.includes("http.server.request.duration"),
    15_000,
    "a log record, a span and a metric",
  );
  // Severity numbers of the OTel log data model: INFO 9, WARN 13.
  const listening = got.logs.find((r) => /listening on/.test(text(r)))!;
  assert.equal(listening.severityNumber, 9);
  assert.equal(listening.severityText, "INFO");
  const warning = got.logs.find((r) => /network probe off/.test(text(r)))!;
  assert.equal(warning.severityNumber, 13, "a warning arrives as WARN");
  assert.equal(warning.severityText, "WARN");
  assert.ok(
    !got.logs.some((r) => (r.severityNumber as number) >= 17),
    "nothing arrives as ERROR on a clean run",
  );
  // The connection's lines carry its id, so OTel logs join like text logs.
  const disconnect = got.logs.find((r) => /disconnect/.test(text(r)))!;
  assert.match(text(disconnect), /cid=\S+/);
  const span = got.spans.find((s) =>
    JSON.stringify(s).includes("/healthcheck")
  )!;
  assert.match(String(span.name), /GET/);
});
