import { AirgapError } from "../../errors.js";

/**
 * A chart that cannot be packaged or resolved as written: no Chart.yaml, a malformed one, a dependency
 * cycle, a version range nothing satisfies. `item` names the chart (folder, repository or dependency).
 */
export class ChartError extends AirgapError {
  constructor(
    message: string,
    readonly item?: string,
    code = "CHART",
    options?: { cause?: unknown },
  ) {
    super(message, code, options);
  }
}
