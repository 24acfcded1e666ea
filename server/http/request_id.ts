/**
 * The connection id that ties our log lines to the balancer's: the
 * `X-Request-Id` a trusted proxy set (the shipped HAProxy and nginx configs
 * do), or one of ours. A client's own header is ignored (it could make its
 * lines look like another's), and only a short token of safe characters is
 * taken, so nothing can be injected into the logs.
 *
 * @module
 */

const SAFE_ID = /^[\w.:@+-]{1,128}$/;

/**
 * A source of connection ids: the request's `X-Request-Id` when a trusted
 * proxy sent it and it is a safe token, else `<prefix><n>` counting up
 * (cheaper than randomness on the accept path, and unique within the
 * instance).
 */
export function requestIds(
  prefix: string,
): (headers: Headers, fromTrustedProxy: boolean) => string {
  let next = 0;
  return (headers, fromTrustedProxy) => {
    const given = fromTrustedProxy ? headers.get("x-request-id") : null;
    return given !== null && SAFE_ID.test(given)
      ? given
      : `${prefix}${(next++).toString(36)}`;
  };
}
