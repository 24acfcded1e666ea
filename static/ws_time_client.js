// @ts-check
/**
 * The reconnecting ws-time client (placeholder until the client issue).
 * @module
 */

/** Opens a ws-time.v1 connection to `url` and calls `onMessage` per message. */
export function connect(url, onMessage) {
  const socket = new WebSocket(url, "ws-time.v1");
  socket.onmessage = (event) => onMessage(JSON.parse(event.data));
  return socket;
}
