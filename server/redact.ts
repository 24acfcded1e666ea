/**
 * Secrets out of logs: a URL with its password replaced, so a Redis URL can
 * be printed in startup errors and link messages. A leaf, so the config and
 * the store can both use it without importing each other.
 *
 * @module
 */

/** Hides the password of a URL so it can be logged. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "<unparsable URL>";
  }
}

/**
 * Hides the password of every URL inside a free text (an error message
 * that quotes a connection string), leaving the rest as it is.
 */
export function redactText(text: string): string {
  return text.replace(/(\w+:\/\/[^\s:@/]*:)[^\s@/]+@/g, "$1***@");
}
