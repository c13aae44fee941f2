import { UsageError } from "../../errors.js";

export async function runDiff(_old: string, _new: string, _flags: { json?: boolean }): Promise<void> {
  throw new UsageError("airgap bundle diff is not available in this version of airgap");
}
