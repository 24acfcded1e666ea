/**
 * The wiring: builds each part from the config and joins them into one
 * request handler. Nothing here decides anything a part could decide
 * alone; what is left is the order of an upgrade (guard, reserve, resolve,
 * upgrade, accept) and which part tells which (a takeover from the store
 * evicts a socket; a socket that ends releases its session and its
 * address slot). It is a function of (config, store, clock, logger) and
 * needs no network, so tests build exactly what production runs and call
 * it with plain `Request`s.
 *
 * @example
 * ```ts
 * import { buildApp } from "./app.ts";
 * import { systemClock } from "./clock.ts";
 * import { parseConfig } from "./config/parse.ts";
 * import { memoryLogger } from "./logger.ts";
 * import { MemoryStore } from "./sessions/store.ts";
 *
 * const parsed = parseConfig(["--drain-delay", "0"], {});
 * if (parsed.help) throw new Error("unexpected --help");
 * const { config } = parsed;
 * const store = new MemoryStore(systemClock, config.sessionTtlMs);
 * const app = buildApp({ config, store, clock: systemClock, logger: memoryLogger() });
 * // Deno.serve(app.handler) in production; any Request works in a test.
 * const response = await app.handler(new Request("http://localhost/healthz"));
 * if (response.status !== 200) throw new Error(`healthz: ${response.status}`);
 * app.close();
 * ```
 *
 * @module
 */

import { declareMetrics } from "./app_metrics.ts";
import type { Clock } from "./clock.ts";
import type { Config } from "./config/schema.ts";
import { createHealthEndpoint } from "./health/endpoint.ts";
import { Drainer, RECONNECT_SPREAD_MS } from "./health/drain.ts";
import { CapacityMonitor, type Probe } from "./health/monitor.ts";
import {
  AddressSet,
  type ClientInfo,
  createClientInfo,
  peerAddress,
  peerTrusted,
  warnUntrustedForwarding,
} from "./http/client_address.ts";
import {
  createOperatorRouter,
  createRouter,
  type Handler,
} from "./http/router.ts";
import { createStaticHandler } from "./http/static.ts";
import { gatedLogger, type Logger } from "./logger.ts";
import { requestIds } from "./http/request_id.ts";
import { Histogram, latencyBuckets, Metrics } from "./metrics.ts";
import { RECORD_FORMAT } from "./sessions/redis_scripts.ts";
import { startRefresher } from "./sessions/refresher.ts";
import { createSessionResolver } from "./sessions/resolver.ts";
import type { SessionStore } from "./sessions/store.ts";
import { logLabel, TokenSigner } from "./sessions/token.ts";
import { AddressLimits, limitsEnabled } from "./ws/address_limits.ts";
import type { Connection, ConnectionSet } from "./ws/connections.ts";
import { OPENING_LIMIT, OpeningGate } from "./ws/opening_gate.ts";
import { createOriginCheck } from "./ws/origin.ts";
import {
  CLOSE,
  CLOSE_REASON,
  type MoveReason,
  PROTOCOL,
} from "./ws/protocol.ts";
import {
  Fleet,
  lowestRecordFormat,
  type PresenceBoard,
} from "./fleet/presence.ts";
import { Rebalancer } from "./fleet/rebalance.ts";
import { handOn, replacementReady, type SteerSelf } from "./fleet/steer.ts";
import { VERSION } from "./version.ts";
import {
  createSocketLifecycle,
  type TrafficCounts,
} from "./ws/socket_lifecycle.ts";
import { createUpgradeGuard } from "./ws/upgrade_guard.ts";
import { Reservations } from "./ws/reservations.ts";

/** Everything the app needs, passed in. */
export interface AppOptions {
  readonly config: Config;
  readonly store: SessionStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The ticker's clock (`--precise-ticks`); disposed on close. */
  readonly tickClock?: Clock & Partial<Disposable>;
  /** Signs tokens; default: one from `config.sessionSecret`. */
  readonly tokens?: TokenSigner;
  /** Capacity probes beside connections (network, lag, memory). */
  readonly probes?: Readonly<Record<string, Probe>>;
  /** Figures behind the probes, shown in the JSON health details. */
  readonly capacityFigures?: () => object;
  /** Random numbers in [0, 1), for jitter. Default Math.random. */
  readonly random?: () => number;
  /** The listeners' state, for metrics; default: always accepting. */
  readonly listeners?: () => ListenerState;
  /** Handshakes between admission and open at once; default 64. */
  readonly openingLimit?: number;
  /** Where the fleet's presence records meet (a shared store); none: alone. */
  readonly fleetBoard?: PresenceBoard;
}

/** Whether the listeners accept, and how often they could not. */
export interface ListenerState {
  readonly accepting: boolean;
  readonly acceptFailures: number;
}

/** A built app: the handler and the handles main and tests need. */
export interface App {
  /** The Deno.serve handler. */
  readonly handler: Handler;
  /** The operator listener's handler (`--metrics-port`). */
  readonly operatorHandler: Handler;
  readonly connections: ConnectionSet;
  readonly monitor: CapacityMonitor;
  readonly metrics: Metrics;
  readonly tokens: TokenSigner;
  /** Cumulative WebSocket payload bytes and messages, both directions. */
  traffic(): TrafficCounts;
  /**
   * Leaves gracefully: fails the health check at once, waits the drain
   * delay for the balancer, then asks every client to move (a text client
   * is closed with a hint), spread over the drain period, and waits for
   * the movers at most the move window. Resolves with how many it asked.
   */
  drain(): Promise<number>;
  /** Fails the health check and closes everyone now, with jittered hints. */
  closeNow(): number;
  /** Stops timers and the ticker; closes every connection with 1001. */
  close(): void;
}

/** Builds the app exactly as production runs it. */
export function buildApp(options: AppOptions): App {
  const { config, store, clock, logger } = options;
  const random = options.random ?? Math.random;
  const now = () => clock.now();
  // Lines about single connections can come 10,000 a second in a storm.
  const connLog = gatedLogger(logger, {
    mode: config.logConnections,
    perSecond: 10,
    now,
    what: "connection lines",
  });
  // Refused upgrades are always told, but never more than 5 a second.
  const refusalLog = gatedLogger(logger, {
    mode: "sampled",
    perSecond: 5,
    now,
    what: "refusal lines",
  });
  const trustedProxies = new AddressSet(config.trustedProxies);
  const connectionId = requestIds(
    `${config.name.slice(0, 8)}-${
      Math.floor(random() * 36 ** 4).toString(36)
    }-`,
  );
  const tokens = options.tokens ??
    new TokenSigner(config.sessionSecret, config.sessionSecretPrevious);
  const metrics = new Metrics();
  // Off by default (one address is often many users); when off, nothing is
  // tracked per address at all.
  const limits = limitsEnabled(config)
    ? new AddressLimits(config, clock)
    : null;

  const lifecycle = createSocketLifecycle({
    name: config.name,
    clock,
    ...(options.tickClock ? { tickClock: options.tickClock } : {}),
    maxBufferedBytes: config.maxBufferedBytes,
    maxMessageBytes: config.maxMessageBytes,
    maxMessagesPerSecond: config.maxMessagesPerSecond,
    peerTimeoutMs: config.peerTimeoutMs,
    moveWindowMs: config.moveWindowMs,
    onMoveReturned: () => rebalancer?.returned(),
    // Refreshed tokens ride on ticks, so a token stays valid for a session
    // that lasts longer than the grace period even if the store loses it.
    tokenEverySeconds: Math.max(1, Math.floor(config.sessionTtlMs / 2000)),
    refreshToken: (conn) =>
      tokens.issue(conn.start, clock.now(), conn.sessionId, conn.epoch).token,
    sessionLabel: logLabel,
    metrics,
    logger: connLog,
    onEnded(conn, heldSession) {
      limits?.release(conn.address);
      if (heldSession) {
        store.release(conn.sessionId, conn.epoch).catch(() => {});
      }
    },
  });
  const { connections } = lifecycle;
  store.onTakeover((sessionId, epoch) => lifecycle.evict(sessionId, epoch));
  const refresher = startRefresher({
    store,
    clock,
    logger,
    ttlMs: config.sessionTtlMs,
    heldSessions: () => connections.held(),
    // Sessions taken over while this instance could not hear about it.
    onLost: (lost) => {
      for (const { id, epoch } of lost) lifecycle.evict(id, epoch);
    },
  });
  store.onResync(() => refresher.now());
  const resolve = createSessionResolver({
    store,
    tokens,
    clock,
    ttlMs: config.sessionTtlMs,
    logger,
    onRejected: (reason) =>
      metrics.inc("wstime_tokens_rejected_total", { reason }),
    onPreviousKey: () => metrics.inc("wstime_tokens_previous_key_total"),
    undelivered: (id, epoch) => lifecycle.undelivered(id, epoch),
  });

  const opening = new OpeningGate(options.openingLimit ?? OPENING_LIMIT);
  const reservations = new Reservations({
    gate: opening,
    limits,
    live: () => connections.size,
  });
  const monitor = new CapacityMonitor({
    threshold: config.healthThreshold,
    recover: config.healthRecover,
    probes: {
      connections: () => reservations.occupancy() / config.maxConnections,
      ...options.probes,
    },
  });
  const guard = createUpgradeGuard({
    maxConnections: config.maxConnections,
    occupancy: () => reservations.occupancy(),
    draining: () => monitor.draining,
    clientInfo: createClientInfo(
      trustedProxies,
      config.forwardedHeader,
      warnUntrustedForwarding(logger, 16),
    ),
    admissions: [
      createOriginCheck(config),
      ...(limits
        ? [(_: Request, client: ClientInfo) => limits.check(client.address)]
        : []),
    ],
    random,
  });

  const upgradeDuration = new Histogram(UPGRADE_BUCKETS);

  const startedAt = clock.now();
  const board = options.fleetBoard;
  const fleet = board
    ? new Fleet({
      board: {
        async exchangePresence(name, record, stale) {
          const all = await board.exchangePresence(name, record, stale);
          // Holders in records only while every instance reads them.
          store.writeHolders?.(lowestRecordFormat(all) >= RECORD_FORMAT);
          return all;
        },
      },
      clock,
      logger,
      // A new instance gets traffic once the balancer's checks pass: about
      // as long as they take to notice a failing one, which --drain-delay
      // is set to cover (5 s at least).
      settleMs: Math.max(5000, config.drainDelayMs),
      self: () => {
        // `usage` is the fullest probe's ratio, as the health check uses it.
        const { usage, healthy } = monitor.report();
        return {
          name: config.name,
          version: VERSION,
          startedAt,
          connections: connections.size,
          capacity: config.maxConnections,
          load: usage,
          healthy,
          draining: monitor.draining,
          records: RECORD_FORMAT,
        };
      },
    })
    : null;
  const rebalancer = fleet && config.rebalance
    ? new Rebalancer({
      fleet,
      clock,
      logger,
      tolerance: config.rebalanceTolerance,
      rate: config.rebalanceRate,
      threshold: config.healthThreshold,
      self: () => ({
        name: config.name,
        connections: connections.size - lifecycle.moving(),
        load: monitor.report().usage,
        handshakes: reservations.pending + opening.waiting,
      }),
      move: (count) => moveOldest(count, "rebalance"),
    })
    : null;
  fleet?.start();
  rebalancer?.start();

  /**
   * Asks up to `count` clients to move, longest-connected first, none that
   * arrived within --rebalance-min-stay; JSON clients before text ones,
   * since only they can move without missing a tick.
   */
  function moveOldest(count: number, reason: MoveReason): number {
    const stayedSince = clock.now() - config.rebalanceMinStayMs;
    const picked: Connection[] = [];
    const text: Connection[] = [];
    for (const conn of connections.values()) {
      if (conn.acceptedAt > stayedSince) break;
      if (lifecycle.isMoving(conn) || conn.evicted) continue;
      if (conn.json) picked.push(conn);
      else if (text.length < count) text.push(conn);
      if (picked.length >= count) break;
    }
    picked.push(...text.slice(0, count - picked.length));
    for (const conn of picked) {
      lifecycle.drain(conn, Math.round(random() * RECONNECT_SPREAD_MS), reason);
    }
    return picked.length;
  }

  function steerSelf(): SteerSelf {
    return {
      name: config.name,
      startedAt,
      connections: connections.size,
      draining: monitor.draining,
    };
  }

  /**
   * Upgrades a mover's new connection only to close it with 4004: a
   * better place exists, and its old connection still ticks while it
   * tries the balancer again. No session is touched.
   */
  function handOnward(
    request: Request,
    why: string,
    cid: string,
    hop: number,
  ): Response {
    const upgraded = Deno.upgradeWebSocket(request, { protocol: PROTOCOL });
    upgraded.socket.addEventListener("open", closeHandedOn);
    metrics.inc("wstime_moves_handed_on_total");
    connLog.info("handed on", { cid, hop, why });
    return upgraded.response;
  }

  async function upgrade(
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ): Promise<Response> {
    const began = performance.now();
    try {
      return await admit(request, info);
    } finally {
      upgradeDuration.observe((performance.now() - began) / 1000);
    }
  }

  async function admit(
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ): Promise<Response> {
    const cid = connectionId(
      request.headers,
      peerTrusted(trustedProxies, info),
    );
    const verdict = guard(request, info);
    if (verdict.refusal) {
      const { reason, response } = verdict.refusal;
      metrics.inc("wstime_upgrades_refused_total", { reason });
      refusalLog.info("upgrade refused", {
        cid,
        reason,
        status: response.status,
        address: verdict.client?.address ?? peerAddress(info),
      });
      return response;
    }
    const { client, json, label, token, hop } = verdict.admitted;
    const why = hop > 0 && json && fleet
      ? handOn(fleet.view, steerSelf(), hop)
      : null;
    if (why !== null) return handOnward(request, why, cid, hop);
    using slot = reservations.reserve(client.address);
    await slot.enterGate();
    const session = await resolve(token);
    const upgraded = Deno.upgradeWebSocket(request, {
      ...(json ? { protocol: PROTOCOL } : {}),
      idleTimeout: config.idleTimeoutS,
    });
    slot.handGateTo(upgraded.socket);
    const fields = {
      cid,
      id: label || undefined,
      session: () => logLabel(session.id),
      address: client.address,
    };
    const conn = session.superseded ? null : lifecycle.accept(upgraded.socket, {
      ...session,
      resumed: session.resumed !== "",
    }, { json, address: client.address, label, id: cid });
    if (conn === null) {
      // A stale handshake: a newer connection holds the session. It is
      // upgraded only to be told so (4002); it starts and takes nothing.
      if (session.superseded) lifecycle.supersede(upgraded.socket);
      connLog.info("superseded", { ...fields, epoch: session.epoch });
      return upgraded.response;
    }
    // The live connection holds the address slot now; onEnded frees it.
    slot.keepAddress();
    // A claim from the store announced itself; a session written back from
    // its token took nothing the store knew of, but an older connection
    // may still hold it elsewhere.
    if (session.resumed === "token") {
      store.announce(session.id, session.epoch).catch(() => {});
    }
    metrics.inc("wstime_sessions_total", {
      kind: session.resumed === "" ? "started" : "resumed",
      from: session.resumed === "" ? "new" : session.resumed,
    });
    connLog.info("connect", {
      ...fields,
      resumed: session.resumed || "no",
      seconds: conn.lastTick,
      protocol: json ? PROTOCOL : "text",
    });
    return upgraded.response;
  }

  declareMetrics(metrics, {
    listeners: options.listeners ??
      (() => ({ accepting: true, acceptFailures: 0 })),
    connections: () => connections.size,
    traffic: lifecycle.traffic,
    tickLateness: lifecycle.tickLateness,
    upgradeDuration,
    monitor,
    store: () => store.status(),
    storeCalls: () => store.callDurations(),
    fleet: () => fleet?.view.instances.map((r) => r.connections) ?? [],
  });
  const health = (details: boolean) =>
    createHealthEndpoint({
      monitor,
      threshold: config.healthThreshold,
      recover: config.healthRecover,
      name: config.name,
      connections: () => connections.size,
      maxConnections: config.maxConnections,
      figures: options.capacityFigures ?? (() => ({})),
      store: () => store.status(),
      random,
      details,
    });
  const renderMetrics = () => metrics.render();
  // With an operator port, the public one serves neither the metrics nor
  // the health details: they are for operators, not for anyone online.
  const operatorPort = config.metricsPort > 0;
  const handler = createRouter({
    upgrade,
    healthcheck: health(!operatorPort),
    metrics: operatorPort ? null : renderMetrics,
    assets: createStaticHandler(),
  });
  const operatorHandler = createOperatorRouter({
    healthcheck: health(true),
    metrics: renderMetrics,
  });
  const drainer = new Drainer<Connection>({
    clock,
    delayMs: config.drainDelayMs,
    periodMs: config.drainPeriodMs,
    connections: () => connections.values(),
    // Everyone at once (SIGINT) leaves no time to move first.
    close: (conn, hint, now) =>
      lifecycle.drain(conn, hint, handedOver ? "deploy" : "drain", !now),
    ready: () => handover(),
    random,
  });
  let handedOver = false;

  /**
   * Resolves when the movers have a place that stays: a younger instance
   * with room (a deploy's replacement), or once --drain-handover is up.
   */
  async function handover(): Promise<void> {
    if (!fleet) return;
    const until = clock.now() + config.drainHandoverMs;
    for (;;) {
      handedOver = replacementReady(fleet.view, steerSelf());
      if (handedOver || clock.now() >= until) break;
      await new Promise((resolve) => clock.setTimeout(() => resolve(0), 250));
    }
    logger.info("drain handover", {
      replacement: handedOver ? "ready" : "none",
      instances: fleet.view.instances.length,
    });
  }

  return {
    handler,
    operatorHandler,
    connections,
    monitor,
    metrics,
    tokens,
    traffic: lifecycle.traffic,
    async drain() {
      rebalancer?.stop();
      monitor.startDraining();
      await drainer.start();
      // Clients asked to move leave on their own once their new connection
      // is up; the window bounds the wait (the ticker closes stragglers).
      const until = clock.now() + config.moveWindowMs + RECONNECT_SPREAD_MS +
        MOVE_GRACE_MS;
      while (lifecycle.moving() > 0 && clock.now() < until) {
        await new Promise((resolve) => clock.setTimeout(() => resolve(0), 100));
      }
      return drainer.closed;
    },
    closeNow() {
      rebalancer?.stop();
      monitor.startDraining();
      drainer.closeAllNow();
      return drainer.closed;
    },
    close() {
      rebalancer?.stop();
      fleet?.stop();
      refresher.stop();
      lifecycle.stop();
      opening.close();
    },
  };
}

/** Closes a handed-on connection as soon as it opens. */
function closeHandedOn(this: WebSocket): void {
  this.close(CLOSE.handedOn, CLOSE_REASON.handedOn);
}

/** Beyond the move window: the ticker closes stragglers on a tick. */
const MOVE_GRACE_MS = 1500;

/** Upgrade time buckets, s: a header check up to a slow store lookup. */
const UPGRADE_BUCKETS = latencyBuckets(0.0001);
