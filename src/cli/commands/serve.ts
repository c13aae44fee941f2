import { UsageError } from "../../errors.js";

export async function runServe(_input: string, _flags: Record<string, unknown>): Promise<void> {
  throw new UsageError("airgap bundle serve is not available in this version of airgap");
}
