/**
 * The child side of the bench's process protocol: JSON events out on
 * stdout, one per line, and plain commands in on stdin, one per line.
 * (`child_events.ts` is the coordinator's side.)
 *
 * @module
 */

const encoder = new TextEncoder();

/** Prints `event` as one JSON line on stdout. */
export function emit(event: { type: string }): void {
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(event) + "\n"));
}

/** The commands arriving on stdin, one per line, until it closes. */
export async function* commands(): AsyncGenerator<string> {
  let buffer = "";
  for await (
    const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())
  ) {
    buffer += chunk;
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    yield* lines;
  }
}
