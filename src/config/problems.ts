/**
 * Turn YAML syntax errors and zod issues into problems located at `file:line:column`, then into one
 * ConfigError that lists them all. Locations come from the YAML node the issue is about: the key for an
 * unknown key, the parent mapping for a missing key, the value otherwise.
 */
import { type Document, isMap, isNode, isPair, isScalar, isSeq, type LineCounter, type Node } from "yaml";
import { z } from "zod";
import { ConfigError } from "../errors.js";
import { CREDENTIAL_KEYS } from "./schema.js";

export type PathSegment = string | number;

export interface ConfigProblem {
  /** Field path inside the document, e.g. ["images", 2, "ref"]. */
  path: PathSegment[];
  message: string;
  /** Point at the key of the last path segment instead of its value. */
  atKey?: boolean;
}

export interface LocatedProblem {
  file: string;
  line: number;
  column: number;
  /** `images[2].ref` */
  field: string;
  message: string;
}

/** A config that does not parse or validate; `problems` has every one of them, in file order. */
export class ConfigValidationError extends ConfigError {
  constructor(readonly problems: LocatedProblem[]) {
    super(...ConfigValidationError.shape(problems));
  }

  /** One problem is the message; several are announced by it and listed one per line. */
  private static shape(problems: LocatedProblem[]): ConstructorParameters<typeof ConfigError> {
    const first = problems[0];
    const line = (p: LocatedProblem) => (p.field ? `${p.field}: ${p.message}` : p.message);
    const where = (p: LocatedProblem) => `${p.file}:${p.line}:${p.column}`;
    if (!first) return ["invalid config"];
    if (problems.length === 1) return [line(first), where(first)];
    return [
      `${problems.length} problems in ${first.file}:`,
      undefined,
      { details: problems.map((p) => `${where(p)}: ${line(p)}`) },
    ];
  }

  /** Every problem on a line of its own, with its file:line:column. */
  get lines(): string[] {
    return this.details ?? [this.message];
  }
}

export function formatPath(path: PathSegment[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

export class Locator {
  constructor(
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
    private readonly file: string,
  ) {}

  locate(problem: ConfigProblem): LocatedProblem {
    const offset = this.offsetOf(problem);
    const pos = this.lines.linePos(offset);
    return {
      file: this.file,
      line: pos.line,
      column: pos.col,
      field: formatPath(problem.path),
      message: problem.message,
    };
  }

  private offsetOf(problem: ConfigProblem): number {
    let node: unknown = this.doc.contents;
    let offset = rangeStart(node) ?? 0;
    const { path } = problem;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
        );
        if (!pair) return offset;
        if (last && problem.atKey) return rangeStart(pair.key) ?? offset;
        // `key:` with no value has a null value node placed after the colon; the key is more useful.
        const valueStart = rangeStart(pair.value);
        const isEmpty = isScalar(pair.value) && pair.value.value === null && pair.value.source === "";
        offset = isEmpty || valueStart === undefined ? (rangeStart(pair.key) ?? offset) : valueStart;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === "number") {
        const item = node.items[seg];
        if (item === undefined) return offset;
        offset = rangeStart(item) ?? offset;
        node = item;
      } else {
        return offset;
      }
    }
    return offset;
  }
}

function rangeStart(node: unknown): number | undefined {
  return isNode(node) && (node as Node).range ? (node as Node).range![0] : undefined;
}

/** Edit distance counting a swap of neighbours as one edit (optimal string alignment), for suggestions. */
export function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  // Suggest only near misses: transpositions and one or two wrong letters, scaled for short keys.
  return best !== undefined && bestDistance <= Math.max(1, Math.min(3, Math.floor(word.length / 3)))
    ? best
    : undefined;
}

function suggestionFor(key: string, known: string[], inRegistry: boolean): string | undefined {
  return inRegistry && CREDENTIAL_KEYS.includes(key.toLowerCase()) ? undefined : closest(key, known);
}

type Schema = z.ZodType;

function unwrap(schema: Schema): Schema {
  let s = schema;
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault) {
      s = s.unwrap() as Schema;
    } else if (s instanceof z.ZodPipe) {
      s = s.in as Schema;
    } else {
      return s;
    }
  }
}

function firstKey(schema: Schema): string | undefined {
  const s = unwrap(schema);
  return s instanceof z.ZodObject ? Object.keys(s.shape)[0] : undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Which branch of a union the user meant: for a mapping, the first object branch whose first key is
 * present (each branch is identified by its first key); a record branch takes any other mapping.
 */
function selectBranch(union: z.ZodUnion, data: unknown): number | undefined {
  const options = union.options as readonly Schema[];
  if (!isPlainObject(data)) return undefined;
  for (let i = 0; i < options.length; i++) {
    const key = firstKey(options[i]!);
    if (key !== undefined && key in data) return i;
  }
  const records = options.map((o, i) => (unwrap(o) instanceof z.ZodRecord ? i : -1)).filter((i) => i >= 0);
  return records.length === 1 ? records[0] : undefined;
}

function child(schema: Schema, seg: PathSegment, data: unknown): Schema | undefined {
  const s = unwrap(schema);
  if (s instanceof z.ZodObject) return (s.shape as Record<string, Schema>)[String(seg)];
  if (s instanceof z.ZodArray) return s.element as Schema;
  if (s instanceof z.ZodRecord) return s.valueType as Schema;
  if (s instanceof z.ZodUnion) {
    const branch = selectBranch(s, data);
    return branch === undefined ? undefined : child(s.options[branch] as Schema, seg, data);
  }
  return undefined;
}

function valueAt(data: unknown, path: PathSegment[]): unknown {
  let v = data;
  for (const seg of path) {
    if (Array.isArray(v) && typeof seg === "number") v = v[seg];
    else if (isPlainObject(v)) v = v[String(seg)];
    else return undefined;
  }
  return v;
}

function schemaAt(root: Schema, data: unknown, path: PathSegment[]): Schema | undefined {
  let s: Schema | undefined = root;
  for (let i = 0; i < path.length && s; i++) s = child(s, path[i]!, valueAt(data, path.slice(0, i)));
  if (s) s = unwrap(s);
  if (s instanceof z.ZodUnion) {
    const branch = selectBranch(s, valueAt(data, path));
    if (branch !== undefined) return unwrap(s.options[branch] as Schema);
  }
  return s;
}

function unionAt(root: Schema, data: unknown, path: PathSegment[]): Schema | undefined {
  let s: Schema | undefined = root;
  for (let i = 0; i < path.length && s; i++) s = child(s, path[i]!, valueAt(data, path.slice(0, i)));
  return s && unwrap(s);
}

function describe(value: unknown): string {
  if (value === null) return "null (an empty value)";
  if (Array.isArray(value)) return "a list";
  if (isPlainObject(value)) return "a mapping";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

const EXPECTED: Record<string, string> = {
  object: "a mapping",
  array: "a list",
  string: "a string",
  boolean: "true or false",
  number: "a number",
  record: "a mapping",
};

/** Convert zod issues to problems. `root` and `data` let unions and unknown keys be explained well. */
export function problemsFromIssues(
  issues: readonly z.core.$ZodIssue[],
  root: Schema,
  data: unknown,
): ConfigProblem[] {
  const out: (ConfigProblem & { suggests?: string | undefined; missing?: boolean })[] = [];
  const visit = (issue: z.core.$ZodIssue, base: PathSegment[]) => {
    const path = [...base, ...(issue.path as PathSegment[])];
    const input = valueAt(data, path);
    switch (issue.code) {
      case "unrecognized_keys": {
        const schema = schemaAt(root, data, path);
        const known = schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
        const inRegistry = path.length === 2 && path[0] === "registries";
        for (const key of issue.keys) {
          let message: string;
          if (inRegistry && CREDENTIAL_KEYS.includes(key.toLowerCase())) {
            message =
              `unknown key "${key}": registry credentials never go in this file; they come from ` +
              "docker config.json ($DOCKER_CONFIG, ~/.docker/config.json), REGISTRY_AUTH_FILE or containers " +
              "auth.json, and credential helpers";
          } else {
            const suggestion = closest(key, known);
            message = `unknown key "${key}"${suggestion ? ` (did you mean "${suggestion}"?)` : ""}`;
            if (!suggestion && known.length > 0) message += `; allowed keys: ${known.join(", ")}`;
          }
          out.push({
            path: [...path, key],
            message,
            atKey: true,
            suggests: suggestionFor(key, known, inRegistry),
          });
        }
        return;
      }
      case "invalid_union": {
        const schema = unionAt(root, data, path);
        const branch = schema instanceof z.ZodUnion ? selectBranch(schema, input) : undefined;
        const branchIssues = branch === undefined ? undefined : issue.errors[branch];
        if (branchIssues) {
          for (const sub of branchIssues) visit(sub, path);
          return;
        }
        if (schema instanceof z.ZodUnion) {
          const keys = (schema.options as readonly Schema[]).map(firstKey).filter((k) => k !== undefined);
          if (keys.length === schema.options.length) {
            out.push({
              path,
              message: isPlainObject(input)
                ? `expected one of the keys ${keys.join(", ")} to say what kind of source this is`
                : `expected a mapping with one of the keys ${keys.join(", ")}, got ${describe(input)}`,
            });
            return;
          }
        }
        const generic = issue.message === "Invalid input" ? "does not match any allowed form" : issue.message;
        out.push({ path, message: `${generic}, got ${describe(input)}` });
        return;
      }
      case "invalid_type": {
        if (input === undefined && path.length > 0) {
          out.push({
            path,
            message: `missing required key "${String(path[path.length - 1])}"`,
            missing: true,
          });
          return;
        }
        let message = `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describe(input)}`;
        if (issue.expected === "string" && (typeof input === "number" || typeof input === "boolean")) {
          message += ` (put it in quotes: "${String(input)}")`;
        }
        out.push({ path, message });
        return;
      }
      case "invalid_value": {
        const allowed = issue.values.map((v) => JSON.stringify(v)).join(" or ");
        out.push({ path, message: `expected ${allowed}, got ${describe(input)}` });
        return;
      }
      case "invalid_key": {
        for (const sub of issue.issues) {
          out.push({
            path,
            message: `invalid key ${JSON.stringify(String(path[path.length - 1]))}: ${sub.message}`,
            atKey: true,
          });
        }
        return;
      }
      case "invalid_element": {
        for (const sub of issue.issues) visit(sub, path);
        return;
      }
      case "too_small": {
        if (issue.origin === "array") {
          out.push({ path, message: `expected at least ${String(issue.minimum)} entries` });
          return;
        }
        out.push({ path, message: issue.message });
        return;
      }
      default:
        out.push({ path, message: issue.message });
    }
  };
  for (const issue of issues) visit(issue, []);
  // "unknown key imgaes (did you mean images?)" already explains a missing "images".
  const suggested = new Set(
    out.flatMap((p) => (p.suggests ? [formatPath([...p.path.slice(0, -1), p.suggests])] : [])),
  );
  return out
    .filter((p) => !(p.missing && suggested.has(formatPath(p.path))))
    .map(({ suggests: _s, missing: _m, ...p }) => p);
}

export function throwProblems(problems: ConfigProblem[], locator: Locator | undefined, file: string): never {
  const located = problems.map((p) =>
    locator ? locator.locate(p) : { file, line: 1, column: 1, field: formatPath(p.path), message: p.message },
  );
  located.sort((a, b) => a.line - b.line || a.column - b.column);
  throw new ConfigValidationError(located);
}
