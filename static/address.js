// @ts-check
/**
 * Checks a server address typed into the page before anything connects,
 * and explains the usual mistakes in words: two schemes (`ws://http://host`,
 * which the original ws-time article warns about), no scheme at all, or
 * `http://` where a WebSocket needs `ws://`.
 *
 * @module
 */

/**
 * The outcome: a normalised ws:// or wss:// URL, or a message for the user.
 * @typedef {{ ok: true, url: string } | { ok: false, error: string }} AddressResult
 */

/**
 * The page's own server as a WebSocket address: wss:// when the page came
 * over https, ws:// otherwise.
 * @param {{ protocol: string, host: string }} page
 * @returns {string}
 */
export function defaultAddress(page) {
  return `${page.protocol === "https:" ? "wss:" : "ws:"}//${page.host}/`;
}

/**
 * Validates `input` for a page loaded from `page`.
 * @param {string} input
 * @param {{ protocol: string }} page
 * @returns {AddressResult}
 */
export function parseServerAddress(input, page) {
  const text = input.trim();
  const secure = page.protocol === "https:";
  if (text === "") {
    return fail(`Enter the server's address, for example ${example(secure)}.`);
  }
  if (/\s/.test(text)) return fail("The address cannot contain spaces.");
  const scheme = /^([a-z][a-z0-9+.-]*):(\/\/)?/i.exec(text);
  if (!scheme || (!scheme[2] && !/^(wss?|https?)$/i.test(scheme[1] ?? ""))) {
    // "localhost:8000" parses as scheme "localhost": treat it as hostless.
    return fail(
      `The address needs a scheme: try ${secure ? "wss" : "ws"}://${text}`,
    );
  }
  const name = (scheme[1] ?? "").toLowerCase();
  const rest = text.slice(scheme[0].length);
  if (!scheme[2]) {
    return fail(`Write two slashes after the scheme: ${name}://${rest}`);
  }
  const inner = /^(https?|wss?):\/\//i.exec(rest);
  if ((name === "ws" || name === "wss") && inner) {
    const fixed = `${toWs(inner[1] ?? "")}://${rest.slice(inner[0].length)}`;
    return fail(
      `The address has two schemes (${name}://${
        inner[0]
      }…): keep one, for example ${fixed}`,
    );
  }
  if (name === "http" || name === "https") {
    return fail(
      `${name}:// is for web pages; WebSocket addresses start with ${
        toWs(name)
      }://. Try ${toWs(name)}://${rest}`,
    );
  }
  if (name !== "ws" && name !== "wss") {
    return fail(`Unsupported scheme ${name}://: use ws:// or wss://.`);
  }
  let url;
  try {
    url = new URL(text);
  } catch {
    return fail("This is not a valid address: check the host name and port.");
  }
  if (url.hostname === "") return fail("The address has no host name.");
  if (secure && url.protocol === "ws:") {
    return fail(
      `This page came over https, so the browser blocks unencrypted ws://: use wss://${
        text.slice(5)
      }`,
    );
  }
  // A fragment is meaningless to a WebSocket and makes browsers throw.
  url.hash = "";
  return { ok: true, url: url.href };
}

/**
 * @param {string} error
 * @returns {AddressResult}
 */
function fail(error) {
  return { ok: false, error };
}

/** @param {boolean} secure */
function example(secure) {
  return secure ? "wss://example.com/" : "ws://localhost:8000/";
}

/** @param {string} scheme */
function toWs(scheme) {
  return /s$/i.test(scheme) ? "wss" : "ws";
}
