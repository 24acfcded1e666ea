/**
 * The connection id that ties our log lines to the balancer's: the
 * `X-Request-Id` the balancer set (the shipped HAProxy and nginx configs
 * do), or one of ours. Only a short token of safe characters is taken from
 * the header, so a client cannot inject anything into the logs.
 *
 * @module
 */

const SAFE_ID = /^[\w.:@+-]{1,128}$/;

/**
 * A source of connection ids: the request's `X-Request-Id` when it is a
 * safe token, else `<prefix><n>` counting up (cheaper than randomness on
 * the accept path, and unique within the instance).
 */
export function requestIds(prefix: string): (headers: Headers) => string {
  let next = 0;
  return (headers) => {
    const given = headers.get("x-request-id");
    return given !== null && SAFE_ID.test(given)
      ? given
      : `${prefix}${(next++).toString(36)}`;
  };
}
