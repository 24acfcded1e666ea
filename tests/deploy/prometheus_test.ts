import assert from "node:assert/strict";
import { renderHaproxyConfig } from "../../dev/haproxy_config.ts";
import { Child } from "../../dev/child.ts";
import { startHaproxy } from "../../dev/haproxy.ts";
import { ROOT } from "../../dev/paths.ts";
import { freePort } from "../../dev/ports.ts";
import { RecordingSocket } from "../helpers/recording_socket.ts";
import { startRedis } from "../../dev/redis.ts";
import { type ServerProcess, startServer } from "../../dev/server_process.ts";
import { waitFor } from "../../dev/timing.ts";

const KIT = `${ROOT}deploy/prometheus`;

/** Runs promtool with `args` in deploy/prometheus; its exit code and output. */
async function promtool(...args: string[]) {
  await using tool = new Child("promtool", args, { cwd: KIT });
  const status = await tool.finished();
  return { code: status.code, output: tool.lines.join("\n") };
}

Deno.test("deploy/prometheus: promtool accepts the scrape config and the rules", async () => {
  const config = await promtool("check", "config", "prometheus.yml");
  assert.equal(config.code, 0, config.output);
  const rules = await promtool("check", "rules", "alerts.yml");
  assert.equal(rules.code, 0, rules.output);
  assert.match(rules.output, /SUCCESS: \d+ rules found/);
});

Deno.test("deploy/prometheus: every alert passes its promtool unit tests and every alert has one", async () => {
  const result = await promtool("test", "rules", "alerts_test.yml");
  assert.equal(result.code, 0, result.output);
  const alerts = [
    ...Deno.readTextFileSync(`${KIT}/alerts.yml`).matchAll(
      /^\s+- alert: (\S+)$/gm,
    ),
  ].map((m) => m[1]!);
  const tests = Deno.readTextFileSync(`${KIT}/alerts_test.yml`);
  for (const alert of alerts) {
    assert.match(
      tests,
      new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`),
      `${alert} has no test where it fires`,
    );
  }
  assert.ok(alerts.length >= 9, alerts.join(", "));
});

/** One query of the dashboard: its panel, legend and PromQL. */
interface PanelQuery {
  readonly panel: string;
  readonly expr: string;
}

/** Every target of every panel of deploy/grafana/ws-time.json. */
function dashboardQueries(): PanelQuery[] {
  const dashboard = JSON.parse(
    Deno.readTextFileSync(`${ROOT}deploy/grafana/ws-time.json`),
  );
  const out: PanelQuery[] = [];
  const visit = (panels: Array<Record<string, unknown>>) => {
    for (const panel of panels) {
      if (Array.isArray(panel.panels)) visit(panel.panels);
      for (const target of (panel.targets ?? []) as Array<{ expr: string }>) {
        out.push({ panel: String(panel.title), expr: target.expr });
      }
    }
  };
  visit(dashboard.panels);
  return out;
}

/**
 * Grafana's variables as Grafana would fill them for this fleet: the job,
 * every instance, and a rate window of a few scrapes (1 s here).
 */
function fill(expr: string): string {
  return expr.replaceAll("$__rate_interval", "15s")
    .replaceAll('"$job"', '"ws-time"')
    .replaceAll('"$instance"', '".+"');
}

Deno.test("deploy/grafana: every panel query returns data from a real Prometheus scraping three live instances under load", async () => {
  const dir = await Deno.makeTempDir();
  await using redis = await startRedis();
  const servers: ServerProcess[] = [];
  const sockets: RecordingSocket[] = [];
  let prometheus: Child | undefined;
  let stopChurn = () => {};
  try {
    const agentPorts = [freePort(), freePort(), freePort()];
    const metricsPorts = [freePort(), freePort(), freePort()];
    for (const [i, agentPort] of agentPorts.entries()) {
      servers.push(
        await startServer({
          name: `prom-${i}`,
          env: {
            REDIS_URL: redis.url,
            SESSION_SECRET: "dashboard-test-secret-0123456789abcdef",
          },
          args: [
            "--agent-port",
            String(agentPort),
            "--metrics-port",
            String(metricsPorts[i]),
          ],
        }),
      );
    }
    const port = freePort();
    const statsPort = freePort();
    await using haproxy = await startHaproxy(
      renderHaproxyConfig(
        await Deno.readTextFile(`${ROOT}deploy/haproxy.cfg`),
        {
          port,
          statsPort,
          checkInterval: "500ms",
          backends: servers.map((s, i) => ({
            name: `ws${i + 1}`,
            port: s.port,
            agentPort: agentPorts[i]!,
          })),
        },
      ),
      statsPort,
    );
    await waitFor(
      async () =>
        (await haproxy.servers()).every((s) => s.status.startsWith("UP")),
      15_000,
      "every backend up",
    );

    // The shipped scrape config with this fleet's addresses and a 1 s
    // interval; rules, jobs and paths stay as shipped.
    const shipped = await Deno.readTextFile(`${KIT}/prometheus.yml`);
    // Prometheus scrapes the operator ports, as the shipped units set them.
    const instances = metricsPorts.map((p) => `"127.0.0.1:${p}"`).join(", ");
    const config = shipped
      .replace(/scrape_interval: \S+/, "scrape_interval: 1s")
      .replace(/evaluation_interval: \S+/, "evaluation_interval: 1s")
      .replace(
        /targets: \[[^\]]*10\.0\.0\.11[^\]]*\]/,
        `targets: [${instances}]`,
      )
      .replace(
        /targets: \["127\.0\.0\.1:8404"\]/,
        `targets: ["127.0.0.1:${statsPort}"]`,
      );
    assert.notEqual(config, shipped);
    await Deno.writeTextFile(`${dir}/prometheus.yml`, config);
    await Deno.copyFile(`${KIT}/alerts.yml`, `${dir}/alerts.yml`);
    const promPort = freePort();
    const api = `http://127.0.0.1:${promPort}/api/v1`;
    prometheus = new Child("prometheus", [
      `--config.file=${dir}/prometheus.yml`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ]);

    // Load through the balancer: sessions that tick, resume and close.
    for (let i = 0; i < 90; i++) {
      sockets.push(
        new RecordingSocket(`ws://127.0.0.1:${port}/`, "ws-time.v1"),
      );
    }
    await waitFor(
      () => sockets.every((s) => s.messages.length > 0),
      15_000,
      "every client welcomed",
    );
    // Churn as in production: a client leaves and comes back with its
    // token every 200 ms, so rates over upgrades and resumes stay alive.
    const churn = setInterval(() => {
      const socket = sockets.shift();
      const token = socket?.json[0]?.session;
      if (!socket || typeof token !== "string") return;
      socket.socket.close(1000);
      sockets.push(
        new RecordingSocket(
          `ws://127.0.0.1:${port}/?session=${encodeURIComponent(token)}`,
          "ws-time.v1",
        ),
      );
    }, 200);
    stopChurn = () => clearInterval(churn);
    // One refused upgrade, as a scanner would send.
    await fetch(`http://127.0.0.1:${port}/`, {
      headers: { upgrade: "websocket", connection: "Upgrade" },
    }).then((r) => r.body?.cancel());

    const query = async (expr: string) => {
      const response = await fetch(
        `${api}/query?query=${encodeURIComponent(expr)}`,
      );
      const body = await response.json();
      if (body.status !== "success") {
        throw new Error(`${expr}: ${body.error ?? response.status}`);
      }
      return body.data.result as Array<{
        metric: Record<string, string>;
        value: [number, string];
      }>;
    };
    const hasData = async (expr: string) =>
      (await query(expr)).some((r) => Number.isFinite(Number(r.value[1])));

    // Every target scraped, then enough samples for the rate windows.
    await waitFor(
      async () => (await query("up == 1").catch(() => [])).length === 4,
      30_000,
      "Prometheus scraping three instances and HAProxy",
    );
    const panels = dashboardQueries();
    assert.ok(panels.length >= 30, `${panels.length} queries`);
    const missing = new Set(panels.map((p) => `${p.panel}: ${p.expr}`));
    await waitFor(
      async () => {
        for (const p of panels) {
          const key = `${p.panel}: ${p.expr}`;
          if (missing.has(key) && await hasData(fill(p.expr))) {
            missing.delete(key);
          }
        }
        return missing.size === 0;
      },
      45_000,
      "every panel to have data",
    ).catch(() => {});
    assert.deepEqual([...missing], [], "panels without data");

    // The dashboard's variables resolve to this fleet.
    const jobs = await (await fetch(
      `${api}/label/job/values?match[]=wstime_build_info`,
    )).json();
    assert.deepEqual(jobs.data, ["ws-time"]);
    const names = await (await fetch(
      `${api}/label/instance/values?match[]=${
        encodeURIComponent('wstime_build_info{job="ws-time"}')
      }`,
    )).json();
    assert.equal(names.data.length, 3);

    // Every rule evaluates without error against the real series, and
    // every recording rule records something.
    const rules = await (await fetch(`${api}/rules`)).json();
    const all = rules.data.groups.flatMap((g: { rules: unknown[] }) =>
      g.rules
    ) as Array<
      { name: string; type: string; health: string; lastError?: string }
    >;
    for (const rule of all) {
      assert.equal(rule.health, "ok", `${rule.name}: ${rule.lastError}`);
    }
    const unrecorded = new Set(
      all.filter((r) => r.type === "recording").map((r) => r.name),
    );
    await waitFor(
      async () => {
        for (const name of unrecorded) {
          if (await hasData(name)) unrecorded.delete(name);
        }
        return unrecorded.size === 0;
      },
      20_000,
      "every recording rule to record",
    ).catch(() => {});
    assert.deepEqual([...unrecorded], [], "recording rules with no data");
    const quiet = await query('ALERTS{alertname=~"WsTime.*"}');
    assert.deepEqual(
      quiet.map((a) => a.metric.alertname),
      [],
      "a healthy fleet alerts",
    );

    // A real fault reaches the alert rules by the shipped job names: an
    // instance killed is down for Prometheus and for HAProxy.
    servers[2]!.child.kill("SIGKILL");
    await waitFor(
      async () => {
        const pending = (await query("ALERTS")).map((a) => a.metric.alertname);
        return pending.includes("WsTimeInstanceDown") &&
          pending.includes("WsTimeBalancerBackendDown");
      },
      20_000,
      "WsTimeInstanceDown and WsTimeBalancerBackendDown pending",
    );
  } finally {
    stopChurn();
    await Promise.all(sockets.map((s) => s[Symbol.asyncDispose]()));
    if (prometheus) await prometheus[Symbol.asyncDispose]();
    for (const server of servers) await server[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});
