/**
 * The metric families of an instance, declared in one place: counters that
 * the parts bump as events happen, gauges and histograms read from the
 * parts at scrape time. The names are a contract with dashboards and
 * alerts (docs/operating.md lists them): one meaning per family, base units
 * in the name (`_seconds`, `_bytes`, `_total`), and label values from small
 * fixed sets only, so no client can create series.
 *
 * @module
 */

import type { CapacityMonitor } from "./health/monitor.ts";
import type { Histogram, Metrics } from "./metrics.ts";
import {
  cpuSeconds,
  openDescriptors,
  residentBytes,
  startTimeSeconds,
} from "./process_info.ts";
import type { StoreStatus } from "./sessions/store.ts";
import { VERSION } from "./version.ts";
import { CLOSE_CODE_LABELS, MOVE_REASONS } from "./ws/protocol.ts";
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
  readonly tickLateness: Histogram;
  readonly upgradeDuration: Histogram;
  readonly monitor: CapacityMonitor;
  readonly store: () => StoreStatus;
  readonly storeCalls: () => ReadonlyArray<readonly [string, Histogram]>;
  /** Fresh fleet members' connection counts (empty: no shared store). */
  readonly fleet: () => readonly number[];
}

/** Why an upgrade can be refused (the guard's and the limits' reasons). */
const REFUSAL_REASONS = [
  "handshake",
  "method",
  "version",
  "query",
  "draining",
  "capacity",
  "origin",
  "address-open",
  "address-rate",
] as const;

/** Kinds of failed store calls, as the Redis link counts them. */
const STORE_FAILURES = [
  "offline",
  "timeout",
  "connection",
  "reply",
  "readonly",
  "cluster",
  "overload",
] as const;

/** Each value of `label` as a label set. */
const each = (label: string, values: readonly string[]) =>
  values.map((value) => ({ [label]: value }));

/** The store figures exported as counters: figure -> family and help. */
const STORE_COUNTERS: ReadonlyArray<readonly [string, string, string]> = [
  ["reconnects", "wstime_store_reconnects_total", "Store links rebuilt"],
  [
    "failovers",
    "wstime_store_failovers_total",
    "Primary changes seen (Sentinel promotions, READONLY replies)",
  ],
  [
    "buffered_total",
    "wstime_store_writes_buffered_total",
    "Writes that waited in the buffer for the store",
  ],
  [
    "flushed",
    "wstime_store_writes_replayed_total",
    "Buffered writes written once the store answered",
  ],
  [
    "dropped",
    "wstime_store_writes_dropped_total",
    "Buffered writes dropped, oldest first, when the buffer was full",
  ],
  [
    "missing",
    "wstime_store_records_missing_total",
    "Held sessions whose record the store had lost (written back)",
  ],
];

/** Declares every family of ws-time on `metrics`. */
export function declareMetrics(metrics: Metrics, from: MetricSources): void {
  metrics.gauge(
    "wstime_build_info",
    "Always 1; the labels say which build runs",
    () => [[{ version: VERSION, deno: Deno.version.deno }, 1]],
  );
  metrics.gauge(
    "wstime_connections",
    "Open WebSocket connections",
    from.connections,
  );
  metrics.counter(
    "wstime_sessions_total",
    "Sessions served: started, or resumed from the store or the token",
    [
      { kind: "started", from: "new" },
      { kind: "resumed", from: "store" },
      { kind: "resumed", from: "token" },
    ],
  );
  metrics.counter(
    "wstime_upgrades_refused_total",
    "Refused upgrades, by reason",
    each("reason", REFUSAL_REASONS),
  );
  metrics.histogram(
    "wstime_upgrade_duration_seconds",
    "Time to answer an upgrade, store lookups included",
    () => [[{}, from.upgradeDuration]],
  );
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
  metrics.counter(
    "wstime_takeovers_total",
    "Sessions taken over, by where",
    each("where", ["local", "remote"]),
  );
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
  metrics.counter(
    "wstime_disconnects_total",
    "Closed connections, by close code (known codes, else other)",
    each("code", CLOSE_CODE_LABELS),
  );
  metrics.counter(
    "wstime_moves_total",
    "Clients asked to move, by reason and how: overlap (the old connection ticks until the new one is up) or close",
    MOVE_REASONS.flatMap((reason) =>
      ["overlap", "close"].map((how) => ({ reason, how }))
    ),
  );
  metrics.gauge(
    "wstime_fleet_instances",
    "Instances publishing presence in the shared store, this one included (0 without one)",
    () => from.fleet().length,
  );
  metrics.gauge(
    "wstime_fleet_share",
    "This instance's share of the fleet's connections (1 when alone)",
    () => {
      const counts = from.fleet();
      const total = counts.reduce((a, b) => a + b, 0);
      return total > 0 ? from.connections() / total : 1;
    },
  );
  metrics.counter(
    "wstime_moves_handed_on_total",
    "New connections of moving clients closed at once with 4004 because a better instance had room (they try the balancer again)",
  );
  metrics.counter(
    "wstime_moves_returned_total",
    "Clients asked to move whose new connection came back to this instance",
  );
  metrics.counter(
    "wstime_move_window_expired_total",
    "Clients asked to move that were still here when the move window ended (closed with 1001)",
  );
  metrics.counter(
    "wstime_tokens_rejected_total",
    "Presented tokens that resumed nothing, by reason",
    each("reason", ["invalid", "expired", "future"]),
  );
  metrics.counter(
    "wstime_tokens_previous_key_total",
    "Authentic tokens signed with a --session-secret-previous secret",
    [{}],
  );
  metrics.gauge(
    "wstime_ticks_sent_total",
    "Tick messages sent",
    () => from.traffic().ticks,
    "counter",
  );
  metrics.histogram(
    "wstime_tick_lateness_seconds",
    "How late ticks left against their due time (session start + k s)",
    () => [[{}, from.tickLateness]],
  );
  metrics.gauge(
    "wstime_bytes_total",
    "WebSocket payload bytes, by direction",
    () => {
      const { bytesOut, bytesIn } = from.traffic();
      return [[{ direction: "out" }, bytesOut], [{ direction: "in" }, bytesIn]];
    },
    "counter",
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
    "wstime_draining",
    "1 once the instance is leaving (SIGTERM)",
    () => from.monitor.draining ? 1 : 0,
  );
  declareStoreMetrics(metrics, from);
  metrics.gauge(
    "process_cpu_seconds_total",
    "User and system CPU time spent, seconds",
    cpuSeconds,
    "counter",
  );
  metrics.gauge(
    "process_start_time_seconds",
    "Start time of the process since the Unix epoch, seconds",
    startTimeSeconds,
  );
  metrics.gauge(
    "process_resident_memory_bytes",
    "Resident memory size, bytes",
    residentBytes,
  );
  metrics.gauge(
    "process_open_fds",
    "Open file descriptors (the lowest free one: see docs/operating.md)",
    () => {
      const open = openDescriptors();
      return open === null ? [] : [[{}, open]];
    },
  );
  metrics.gauge(
    "deno_heap_used_bytes",
    "V8 heap in use, bytes",
    () => Deno.memoryUsage().heapUsed,
  );
  // Used against total tells a growing heap from a fragmented one.
  metrics.gauge(
    "deno_heap_total_bytes",
    "V8 heap reserved from the system, bytes",
    () => Deno.memoryUsage().heapTotal,
  );
}

function declareStoreMetrics(metrics: Metrics, from: MetricSources): void {
  metrics.gauge(
    "wstime_store_up",
    "1 while the session store takes writes",
    () => from.store().state === "up" ? 1 : 0,
  );
  metrics.gauge(
    "wstime_store_errors_total",
    "Failed session store calls, by kind",
    () => {
      const errors = from.store().errors ?? {};
      const kinds = new Set([...STORE_FAILURES, ...Object.keys(errors)]);
      return [...kinds].map((kind) => [{ kind }, errors[kind] ?? 0] as const);
    },
    "counter",
  );
  metrics.gauge(
    "wstime_store_rtt_seconds",
    "Round trip of the last PING to the store, seconds",
    () => {
      const rtt = from.store().figures.rtt_ms;
      return rtt === undefined || rtt < 0 ? [] : [[{}, rtt / 1000]];
    },
  );
  metrics.gauge(
    "wstime_store_buffered_writes",
    "Writes waiting for the store now",
    () => from.store().figures.buffered ?? 0,
  );
  metrics.gauge(
    "wstime_store_not_writable_seconds_total",
    "Time the store could not take writes (down, or timing out), seconds",
    () => (from.store().figures.not_writable_ms ?? 0) / 1000,
    "counter",
  );
  for (const [figure, name, help] of STORE_COUNTERS) {
    metrics.gauge(
      name,
      help,
      () => from.store().figures[figure] ?? 0,
      "counter",
    );
  }
  metrics.gauge(
    "wstime_takeover_messages_total",
    "Takeover announcements between instances, by direction",
    () => {
      const figures = from.store().figures;
      return [
        [{ direction: "sent" }, figures.takeovers_sent ?? 0],
        [{ direction: "received" }, figures.takeovers_received ?? 0],
      ];
    },
    "counter",
  );
  metrics.histogram(
    "wstime_store_call_duration_seconds",
    "Time of session store calls, by operation (timeouts included)",
    () => from.storeCalls().map(([op, histogram]) => [{ op }, histogram]),
  );
}
