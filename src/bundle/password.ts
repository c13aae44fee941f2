/**
 * The signing key's password, found the way cosign finds it: `COSIGN_PASSWORD` (an empty value is a
 * valid, empty password), else a prompt on the terminal without echo.
 */
import { StringDecoder } from "node:string_decoder";
import { UsageError } from "../errors.js";

/** The bits of a TTY input stream the prompt uses, so tests can drive it without a terminal. */
export interface PasswordInput {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
  on(event: "data", listener: (chunk: Buffer | string) => void): unknown;
  on(event: "end", listener: () => void): unknown;
  removeListener(event: "data", listener: (chunk: Buffer | string) => void): unknown;
  removeListener(event: "end", listener: () => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

export interface PasswordOutput {
  write(text: string): unknown;
}

export interface ReadPasswordOptions {
  /** Ask twice and require both answers to match (for a new key). */
  confirm?: boolean;
  /** What the password is for, shown in the prompt and in errors, e.g. "cosign.key". */
  purpose: string;
  env?: NodeJS.ProcessEnv;
  input?: PasswordInput;
  output?: PasswordOutput;
}

export async function readPassword(opts: ReadPasswordOptions): Promise<string> {
  const env = opts.env ?? process.env;
  const fromEnv = env.COSIGN_PASSWORD;
  if (fromEnv !== undefined) return fromEnv;

  const input = opts.input ?? (process.stdin as unknown as PasswordInput);
  const output = opts.output ?? process.stderr;
  if (!input.isTTY || typeof input.setRawMode !== "function") {
    throw new UsageError(
      `a password is needed for ${opts.purpose}: set COSIGN_PASSWORD (it may be empty) when not running on a terminal`,
    );
  }
  const first = await prompt(input, output, `Enter password for ${opts.purpose}: `);
  if (!opts.confirm) return first;
  const second = await prompt(input, output, `Enter password for ${opts.purpose} again: `);
  if (first !== second) throw new UsageError(`passwords for ${opts.purpose} do not match`);
  return first;
}

function prompt(input: PasswordInput, output: PasswordOutput, question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const decoder = new StringDecoder("utf8");
    let chars: string[] = [];
    output.write(question);
    input.setRawMode?.(true);

    const finish = (err?: Error) => {
      input.removeListener("data", onData);
      input.removeListener("end", onEnd);
      input.setRawMode?.(false);
      input.pause();
      output.write("\n");
      if (err) reject(err);
      else resolve(chars.join(""));
    };
    const onEnd = () => finish();
    const onData = (chunk: Buffer | string) => {
      const text = typeof chunk === "string" ? chunk : decoder.write(chunk);
      // A paste arrives as one chunk, so walk it character by character.
      for (const ch of text) {
        switch (ch) {
          case "\r":
          case "\n":
          case "\u0004": // Ctrl-D
            finish();
            return;
          case "\u0003": // Ctrl-C
            finish(new UsageError("password entry interrupted"));
            return;
          case "\u007f":
          case "\b":
            chars = chars.slice(0, -1);
            break;
          case "\u0015": // Ctrl-U clears the line, as in a shell
            chars = [];
            break;
          default:
            chars.push(ch);
        }
      }
    };
    input.on("data", onData);
    input.on("end", onEnd);
    input.resume();
  });
}
