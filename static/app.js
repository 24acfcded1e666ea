// @ts-check
/// <reference lib="dom" />
/**
 * The page: wires the address form, the counter, the state line and the
 * message log to a {@link WsTimeClient}. The session token, the address and
 * the tab's id label live in sessionStorage, so a reload in the same tab
 * resumes the same session (and reconnects if it was connected).
 *
 * @module
 */

import { healthcheckProbe, WsTimeClient } from "./ws_time_client.js";
import { defaultAddress, parseServerAddress } from "./address.js";

/** Log lines kept; older ones drop off so the page stays fast for hours. */
const LOG_LIMIT = 100;

const KEYS = {
  session: "ws-time:session",
  address: "ws-time:address",
  id: "ws-time:id",
  active: "ws-time:active",
};

/**
 * @typedef {import("./ws_time_client.js").StateDetail} StateDetail
 * @typedef {import("./ws_time_client.js").Message} Message
 * @typedef {import("./ws_time_client.js").ClientOptions} ClientOptions
 */

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
function byId(id, type) {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`#${id} is missing`);
  return element;
}

/** sessionStorage, or a stand-in when the browser refuses storage. */
function tabStorage() {
  try {
    const storage = globalThis.sessionStorage;
    storage.getItem(KEYS.id);
    return {
      /** @param {string} key */
      get: (key) => storage.getItem(key) ?? "",
      /** @param {string} key @param {string} value */
      set: (key, value) => storage.setItem(key, value),
    };
  } catch {
    /** @type {Map<string, string>} */
    const memory = new Map();
    return {
      /** @param {string} key */
      get: (key) => memory.get(key) ?? "",
      /** @param {string} key @param {string} value */
      set: (key, value) => void memory.set(key, value),
    };
  }
}

/**
 * A random label for this tab's `?id=`. Not crypto.randomUUID: that exists
 * only in secure contexts, and the page is often served over plain http.
 */
function newLabel() {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `web-${
    [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}

/** @param {number} seconds */
function clockText(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor(seconds / 60) % 60;
  const s = seconds % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
}

/** @param {StateDetail} detail */
function stateText(detail) {
  const of = `attempt ${detail.attempt} of ${detail.maxAttempts}`;
  switch (detail.state) {
    case "idle":
      return "not connected";
    case "connecting":
      return detail.attempt === 0 ? "connecting" : `connecting, ${of}`;
    case "connected":
      return "connected";
    case "retrying":
      if (detail.reason === "superseded") {
        return `another tab or device holds this session; retrying, ${of}`;
      }
      if (detail.reason === "silent") {
        return `the connection went silent; retrying, ${of}`;
      }
      return `retrying, ${of}`;
    case "stopped":
      return "disconnected";
    case "gave-up":
      return `gave up after ${detail.maxAttempts} attempts`;
    case "closed":
      return `closed by the server: ${detail.reason}${
        detail.code === undefined ? "" : ` (${detail.code})`
      }`;
  }
}

/** Why the server moved the client, in words. @type {Record<string, string>} */
const MOVE_WORDS = {
  drain: "a drain",
  deploy: "a deploy",
  rebalance: "rebalancing",
};

/** @param {Message} message */
function messageText(message) {
  switch (message.type) {
    case "welcome":
      return `welcome from ${message.server}: ${
        message.resumed ? "session resumed" : "new session"
      } at ${message.seconds} s`;
    case "tick":
      return `tick ${message.seconds} from ${message.server}${
        message.session ? " (token refreshed)" : ""
      }`;
    case "drain":
      return typeof message.moveWithinMs === "number"
        ? `asked to move (${message.reason}): moving in ${message.reconnectAfterMs} ms, still connected meanwhile`
        : `server leaving: reconnect in ${message.reconnectAfterMs} ms`;
    default:
      return JSON.stringify(message);
  }
}

/** @param {string} url */
function sameOrigin(url) {
  const target = new URL(url);
  const http = target.protocol === "wss:" ? "https:" : "http:";
  return target.host === location.host && http === location.protocol;
}

function main() {
  const ui = {
    app: byId("app", HTMLElement),
    form: byId("connect-form", HTMLFormElement),
    address: byId("address", HTMLInputElement),
    connect: byId("connect", HTMLButtonElement),
    disconnect: byId("disconnect", HTMLButtonElement),
    error: byId("address-error", HTMLElement),
    seconds: byId("seconds", HTMLElement),
    clock: byId("clock", HTMLElement),
    server: byId("server", HTMLElement),
    state: byId("state", HTMLElement),
    countdown: byId("countdown", HTMLElement),
    log: byId("log", HTMLOListElement),
  };
  const storage = tabStorage();
  const id = storage.get(KEYS.id) || newLabel();
  storage.set(KEYS.id, id);
  ui.address.value = storage.get(KEYS.address) || defaultAddress(location);

  /** @type {WsTimeClient | null} */
  let client = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  let countdown;

  /** @param {string} text @param {boolean} [event] */
  function log(text, event = false) {
    const item = document.createElement("li");
    const time = document.createElement("time");
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour12: false });
    item.append(time, text);
    if (event) item.className = "event";
    ui.log.prepend(item);
    while (ui.log.childElementCount > LOG_LIMIT) {
      ui.log.lastElementChild?.remove();
    }
  }

  /** @param {string} message */
  function showError(message) {
    ui.error.textContent = message;
    if (message === "") ui.address.removeAttribute("aria-invalid");
    else ui.address.setAttribute("aria-invalid", "true");
  }

  function stopCountdown() {
    clearInterval(countdown);
    countdown = undefined;
    ui.countdown.textContent = "";
  }

  /** @param {number} at */
  function startCountdown(at) {
    stopCountdown();
    const render = () => {
      const left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      ui.countdown.textContent = ` · next try in ${left} s`;
    };
    render();
    countdown = setInterval(render, 250);
  }

  /** @param {StateDetail} detail */
  function onState(detail) {
    ui.app.dataset.state = detail.state;
    ui.state.textContent = stateText(detail);
    if (detail.state === "retrying" && detail.reason === "silent") {
      log("no tick from the server: the connection is dead", true);
    }
    if (detail.state !== "retrying") stopCountdown();
    const active = detail.state === "connecting" ||
      detail.state === "connected" || detail.state === "retrying";
    ui.connect.disabled = active;
    ui.disconnect.disabled = !active;
    ui.address.readOnly = active;
    if (detail.state !== "retrying" && detail.state !== "connected") {
      log(stateText(detail), true);
    }
  }

  /** @param {Message} message */
  function onMessage(message) {
    if (typeof message.seconds === "number") {
      ui.seconds.textContent = String(message.seconds);
      ui.clock.textContent = clockText(message.seconds);
    }
    if (typeof message.server === "string") {
      ui.server.textContent = message.server;
    }
    log(messageText(message), message.type !== "tick");
  }

  function connect() {
    const parsed = parseServerAddress(ui.address.value, location);
    if (!parsed.ok) {
      showError(parsed.error);
      ui.address.focus();
      return;
    }
    showError("");
    if (storage.get(KEYS.address) !== parsed.url) {
      // A token is only worth something to the cluster that issued it;
      // never hand it to another server.
      storage.set(KEYS.session, "");
      ui.seconds.textContent = "0";
      ui.clock.textContent = clockText(0);
      ui.server.textContent = "-";
    }
    ui.address.value = parsed.url;
    storage.set(KEYS.address, parsed.url);
    storage.set(KEYS.active, "1");
    /** @type {ClientOptions} */
    const options = { id };
    const session = storage.get(KEYS.session);
    if (session !== "") options.session = session;
    // Only the page's own origin may be fetched (CSP connect-src).
    if (sameOrigin(parsed.url)) options.probe = healthcheckProbe();
    client = new WsTimeClient(parsed.url, options);
    client.on("state", onState);
    client.on("message", onMessage);
    client.on("move", ({ reason, from, to }) => {
      log(
        `moved by ${
          MOVE_WORDS[reason] ?? reason
        } from ${from} to ${to}, no tick missed`,
        true,
      );
    });
    client.on("session", (token) => storage.set(KEYS.session, token));
    client.on("retry", (retry) => {
      startCountdown(retry.at);
      log(
        `retry ${retry.attempt} of ${retry.maxAttempts} in ${
          (retry.delayMs / 1000).toFixed(1)
        } s${retry.hintMs === undefined ? "" : " (server's hint)"}`,
        true,
      );
    });
    client.on("close", (close) => {
      log(
        close.opened
          ? `connection closed (${close.code}${
            close.reason ? `: ${close.reason}` : ""
          })`
          : "could not connect",
        true,
      );
    });
    client.start();
  }

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!ui.connect.disabled) connect();
  });
  ui.disconnect.addEventListener("click", () => {
    storage.set(KEYS.active, "0");
    void client?.stop();
    ui.connect.focus();
  });
  ui.address.addEventListener("input", () => showError(""));

  if (storage.get(KEYS.active) === "1") connect();
}

main();
