/**
 * A small client of the V8 inspector protocol, enough for the bench to force
 * a GC, read the heap's size and take a heap snapshot of a server started
 * with `--inspect`, and the snapshot's reduction to bytes per kind of object.
 *
 * @module
 */

/** V8 heap figures after a forced full GC, in bytes. */
export interface HeapFigures {
  /** Live objects after GC. */
  readonly used: number;
  /** Heap committed by V8 (what RSS holds for the heap). */
  readonly total: number;
}

/** Objects and their own (shallow) bytes, by kind, from one snapshot. */
export type HeapGroups = Map<string, { count: number; bytes: number }>;

/** One kind of object's share of the heap per connection. */
export interface HeapShare {
  /** Constructor name, or "(type)" for V8's internal kinds. */
  readonly kind: string;
  readonly objectsPerConn: number;
  readonly bytesPerConn: number;
}

/** An open inspector session on one target. */
class Session {
  readonly #socket: WebSocket;
  readonly #answers = new Map<number, PromiseWithResolvers<unknown>>();
  readonly #listeners = new Map<string, (params: unknown) => void>();
  readonly #closed = Promise.withResolvers<void>();
  #next = 1;

  constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data));
      if (message.id !== undefined) {
        const answer = this.#answers.get(message.id);
        this.#answers.delete(message.id);
        if (message.error) {
          answer?.reject(new Error(JSON.stringify(message.error)));
        } else answer?.resolve(message.result);
      } else this.#listeners.get(message.method)?.(message.params);
    };
    socket.onclose = () => {
      for (const answer of this.#answers.values()) {
        answer.reject(new Error("inspector closed"));
      }
      this.#closed.resolve();
    };
  }

  call(method: string, params: unknown = {}): Promise<unknown> {
    const id = this.#next++;
    const answer = Promise.withResolvers<unknown>();
    this.#answers.set(id, answer);
    this.#socket.send(JSON.stringify({ id, method, params }));
    return answer.promise;
  }

  on(method: string, listener: (params: unknown) => void): void {
    this.#listeners.set(method, listener);
  }

  async close(): Promise<void> {
    this.#socket.close();
    await this.#closed.promise;
  }
}

/**
 * Runs `work` in an inspector session on the server at `inspectPort`;
 * resolves null when it does not finish within `timeoutMs`.
 */
async function withSession<T>(
  inspectPort: number,
  timeoutMs: number,
  work: (session: Session) => Promise<T>,
): Promise<T | null> {
  const list = await fetch(`http://127.0.0.1:${inspectPort}/json/list`)
    .then((r) => r.json()) as Array<{ webSocketDebuggerUrl: string }>;
  const url = list[0]?.webSocketDebuggerUrl;
  if (!url) return null;
  const socket = new WebSocket(url);
  const opened = Promise.withResolvers<void>();
  socket.addEventListener("open", () => opened.resolve());
  socket.addEventListener(
    "error",
    () => opened.reject(new Error("inspector unreachable")),
  );
  const session = new Session(socket);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await opened.promise;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    return await Promise.race([work(session), timeout]);
  } finally {
    clearTimeout(timer);
    await session.close();
  }
}

/**
 * Forces a full GC in the server through its inspector and reads the heap.
 * Returns null when the inspector does not answer in time.
 */
export function heapAfterGc(inspectPort: number): Promise<HeapFigures | null> {
  return withSession(inspectPort, 20_000, async (session) => {
    await session.call("HeapProfiler.collectGarbage");
    const usage = await session.call("Runtime.getHeapUsage") as {
      usedSize: number;
      totalSize: number;
    };
    return { used: usage.usedSize, total: usage.totalSize };
  });
}

/**
 * Takes a heap snapshot of the server (V8 collects garbage first) and sums
 * its objects' own sizes by kind. Returns null when it takes over 5 minutes.
 */
export function heapSnapshot(inspectPort: number): Promise<HeapGroups | null> {
  return withSession(inspectPort, 300_000, async (session) => {
    // The snapshot arrives as text chunks before the call's answer.
    const chunks: string[] = [];
    session.on("HeapProfiler.addHeapSnapshotChunk", (params) => {
      chunks.push((params as { chunk: string }).chunk);
    });
    await session.call("HeapProfiler.takeHeapSnapshot", {
      reportProgress: false,
    });
    return groupSnapshot(JSON.parse(chunks.join("")));
  });
}

/** The parts of V8's heap snapshot format that {@link groupSnapshot} reads. */
export interface SnapshotJson {
  readonly snapshot: {
    readonly meta: {
      readonly node_fields: string[];
      readonly node_types: [string[], ...unknown[]];
    };
  };
  readonly nodes: number[];
  readonly strings: string[];
}

/**
 * Sums the self size and count of a snapshot's nodes: objects and closures
 * by constructor or function name, everything else by V8's node type.
 */
export function groupSnapshot(json: SnapshotJson): HeapGroups {
  const fields = json.snapshot.meta.node_fields;
  const types = json.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const groups: HeapGroups = new Map();
  for (let i = 0; i < json.nodes.length; i += width) {
    const type = types[json.nodes[i + typeAt]!]!;
    const name = json.strings[json.nodes[i + nameAt]!]!;
    const kind = type === "object"
      ? name
      : type === "closure"
      ? `(closure) ${name || "anonymous"}`
      : `(${type})`;
    const group = groups.get(kind) ?? { count: 0, bytes: 0 };
    group.count++;
    group.bytes += json.nodes[i + sizeAt]!;
    groups.set(kind, group);
  }
  return groups;
}

/**
 * What `connections` added to the heap between two snapshots, per
 * connection, largest first; kinds adding under `minBytes` each are summed
 * into one "(the rest)" row.
 */
export function heapPerConnection(
  idle: HeapGroups,
  held: HeapGroups,
  connections: number,
  minBytes = 16,
): HeapShare[] {
  const n = Math.max(connections, 1);
  const shares: HeapShare[] = [];
  let restBytes = 0, restObjects = 0;
  const none = { count: 0, bytes: 0 };
  for (const kind of new Set([...idle.keys(), ...held.keys()])) {
    const before = idle.get(kind) ?? none;
    const after = held.get(kind) ?? none;
    const bytes = (after.bytes - before.bytes) / n;
    const objects = (after.count - before.count) / n;
    if (bytes >= minBytes) {
      shares.push({ kind, objectsPerConn: objects, bytesPerConn: bytes });
    } else {
      restBytes += bytes;
      restObjects += objects;
    }
  }
  shares.sort((a, b) => b.bytesPerConn - a.bytesPerConn);
  shares.push({
    kind: "(the rest)",
    objectsPerConn: restObjects,
    bytesPerConn: restBytes,
  });
  return shares.map((s) => ({
    kind: s.kind,
    objectsPerConn: Math.round(s.objectsPerConn * 100) / 100,
    bytesPerConn: Math.round(s.bytesPerConn),
  }));
}
