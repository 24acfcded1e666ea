/**
 * The metric families of an instance, declared in one place: counters that
 * the parts bump as events happen, and gauges read from the parts at scrape
 * time. The names are a contract with dashboards and alerts.
 *
 * @module
 */

import type { CapacityMonitor } from "./health/monitor.ts";
import type { Metrics } from "./metrics.ts";
import type { StoreStatus } from "./sessions/store.ts";
import type { TrafficCounts } from "./ws/socket_lifecycle.ts";

/** Where the gauges read from. */
export interface MetricSources {
  /** Whether the listeners accept, and how often they could not. */
  readonly listeners: () => {
    readonly accepting: boolean;
    readonly acceptFailures: number;
  };
  /** Open connections. */
  readonly connections: () => number;
  readonly traffic: () => TrafficCounts;
  readonly monitor: CapacityMonitor;
  readonly store: () => StoreStatus;
}

/** Declares every family of ws-time on `metrics`. */
export function declareMetrics(metrics: Metrics, from: MetricSources): void {
  metrics.gauge(
    "wstime_connections",
    "Open WebSocket connections",
    from.connections,
  );
  metrics.counter("wstime_sessions_total", "Sessions served, by kind");
  metrics.gauge(
    "wstime_accepting",
    "1 while every listener accepts connections",
    () => from.listeners().accepting ? 1 : 0,
  );
  metrics.gauge(
    "wstime_accept_failures_total",
    "Accept loops that failed (out of descriptors), each reopened later",
    () => from.listeners().acceptFailures,
    "counter",
  );
  metrics.counter("wstime_upgrades_refused_total", "Refused upgrades");
  metrics.counter("wstime_takeovers_total", "Sessions taken over");
  metrics.counter(
    "wstime_superseded_total",
    "Stale handshakes closed with 4002: a newer connection held the session",
  );
  metrics.counter(
    "wstime_slow_readers_closed_total",
    "Connections closed because the client stopped reading",
  );
  metrics.counter(
    "wstime_silent_peers_closed_total",
    "Connections closed because a heartbeating client went silent",
  );
  metrics.counter("wstime_disconnects_total", "Closed connections, by code");
  metrics.counter("wstime_tokens_rejected_total", "Invalid session tokens");
  metrics.gauge(
    "wstime_ticks_sent_total",
    "Tick messages sent",
    () => from.traffic().ticks,
    "counter",
  );
  metrics.gauge(
    "wstime_bytes_total",
    "WebSocket payload bytes",
    () => {
      const { bytesOut, bytesIn } = from.traffic();
      return [[{ direction: "out" }, bytesOut], [{ direction: "in" }, bytesIn]];
    },
    "counter",
  );
  metrics.gauge(
    "process_resident_memory_bytes",
    "Resident memory size in bytes",
    () => Deno.memoryUsage().rss,
  );
  metrics.gauge(
    "deno_heap_used_bytes",
    "V8 heap in use, in bytes",
    () => Deno.memoryUsage().heapUsed,
  );
  metrics.gauge("wstime_capacity_ratio", "Capacity use by probe", () => {
    const report = from.monitor.report();
    return Object.entries(report.ratios).map(([probe, value]) =>
      [{ probe }, value] as const
    );
  });
  metrics.gauge(
    "wstime_healthy",
    "1 while /healthcheck answers 200",
    () => from.monitor.report().healthy ? 1 : 0,
  );
  metrics.gauge(
    "wstime_store_up",
    "1 while the session store is reachable",
    () => from.store().state === "up" ? 1 : 0,
  );
  metrics.gauge(
    "wstime_store_errors_total",
    "Failed session store calls, by kind",
    () =>
      Object.entries(from.store().errors ?? {}).map(([kind, value]) =>
        [{ kind }, value] as const
      ),
    "counter",
  );
  metrics.gauge(
    "wstime_store_figure",
    "Session store figures",
    () =>
      Object.entries(from.store().figures).map(([figure, value]) =>
        [{ figure }, value] as const
      ),
  );
}
