import { InterruptedError } from "../errors.js";
import { removeTempsNow } from "../temp-files.js";
import { printError } from "./output.js";

/**
 * How long the running work has, after SIGINT or SIGTERM, to stop on its own (aborting its transfers
 * and removing its temporary files) before the process removes what is left and exits anyway.
 */
export const STOP_GRACE_MS = 1500;

/**
 * Time for filesystem work already handed to the thread pool (a temp file being created) to land
 * before the temp files are removed a second time and the process exits.
 */
const SETTLE_MS = 100;

let exiting = false;

/**
 * End the process with `code` after removing the noted temporary files, twice: now, and once work
 * already under way had SETTLE_MS to finish creating what it was creating.
 */
export function exitAfterCleanup(code: number): Promise<never> {
  exiting = true;
  removeTempsNow();
  return new Promise<never>(() => {
    setTimeout(() => {
      removeTempsNow();
      process.exit(code);
    }, SETTLE_MS);
  });
}

export interface Interrupt {
  signal: AbortSignal;
  /**
   * The error to report for a failure: the interruption itself when the run was interrupted (whatever
   * the aborted work threw on its way out), else the failure unchanged.
   */
  reason(err: unknown): unknown;
  dispose(): void;
}

/**
 * SIGINT/SIGTERM abort the command's work through one AbortSignal; the command then fails with an
 * InterruptedError (exit 130 or 143) whose message says how to resume. A second signal, or work that
 * is still running after STOP_GRACE_MS, ends the process at once, after removing the temporary files
 * still noted in temp-files.ts.
 */
export function onInterrupt(resume: string, json: boolean): Interrupt {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const exitNow = (err: InterruptedError) => {
    if (exiting) return;
    printError(err, json);
    void exitAfterCleanup(err.exitCode);
  };
  const onSignal = (signal: "SIGINT" | "SIGTERM") => {
    if (ac.signal.aborted) {
      exitNow(ac.signal.reason as InterruptedError);
      return;
    }
    const err = new InterruptedError(signal, resume);
    ac.abort(err);
    timer = setTimeout(() => exitNow(err), STOP_GRACE_MS);
    timer.unref();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: ac.signal,
    reason: (err) => (ac.signal.aborted ? ac.signal.reason : err),
    dispose: () => {
      // Once interrupted, the handlers stay until the process exits: a further signal while the
      // error is reported must end it with the interruption's exit code, not by the signal itself.
      if (ac.signal.aborted) return;
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}
