// @ts-check
import { connect } from "./ws_time_client.js";

const url = location.origin.replace(/^http/, "ws") + "/";
const state = /** @type {HTMLElement} */ (document.getElementById("state"));
const socket = connect(url, (message) => {
  if ("seconds" in message) {
    /** @type {HTMLElement} */ (document.getElementById("seconds"))
      .textContent = String(message.seconds);
  }
  if ("server" in message) {
    /** @type {HTMLElement} */ (document.getElementById("server")).textContent =
      message.server;
  }
});
socket.onopen = () => state.textContent = "connected";
socket.onclose = () => state.textContent = "closed";
