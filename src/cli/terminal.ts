import { redactSecrets } from "../redact.js";

/**
 * Control characters a terminal would act on: C0 (ESC starts CSI/OSC sequences, CR and BS
 * overwrite what was printed, BEL, newlines forge extra lines), DEL, C1 (0x9b is a one-byte CSI,
 * 0x9d OSC), and the Unicode bidi controls that reorder what is shown.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function escapeOne(c: string): string {
  switch (c) {
    case "\n":
      return "\\n";
    case "\r":
      return "\\r";
    case "\t":
      return "\\t";
    case "\u001b":
      return "\\e";
    default: {
      const code = c.charCodeAt(0);
      return code <= 0xff
        ? `\\x${code.toString(16).padStart(2, "0")}`
        : `\\u${code.toString(16).padStart(4, "0")}`;
    }
  }
}

/**
 * Text from a bundle, a remote or an error, made safe for a terminal: secrets redacted, every
 * control character shown as an escape (`\e[2J`, `\x9b`, `\n`), so it is read, never obeyed.
 * Every human-readable line printed from data we did not write ourselves goes through here.
 */
export function forTerminal(text: string): string {
  return redactSecrets(text).replace(CONTROL, escapeOne);
}
