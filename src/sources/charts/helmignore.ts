/**
 * `.helmignore` with Helm 3's rules (pkg/ignore/rules.go; documented at
 * helm.sh/docs/chart_template_guide/helm_ignore_file):
 * - one pattern a line, surrounding spaces trimmed, `#` starts a comment, `**` is refused;
 * - patterns are Go `filepath.Match` globs: `*` and `?` never cross a `/`, `[a-c]`, `[^x]`, `\` escapes;
 * - a trailing `/` matches directories only; a leading `/` anchors at the chart root; a pattern with
 *   another `/` matches the whole relative path; a pattern without `/` matches the base name only;
 * - rules are evaluated in order and the first match ignores the path. A `!` rule is Helm's, not git's:
 *   a path that does NOT match it is ignored (rules.go returns true for non-matches of negated rules).
 *   This surprises people, but it is what `helm package` does, so the package holds the same files.
 * - Helm always adds `templates/.?*` (dot files in templates/ are never rendered).
 * An ignored directory is skipped with everything in it.
 */
import { ChartError } from "./errors.js";

interface Rule {
  raw: string;
  negate: boolean;
  mustDir: boolean;
  match: (path: string) => boolean;
}

/** Go filepath.Match as a RegExp over one whole string; throws on a malformed pattern. */
export function globToRegExp(pattern: string): RegExp {
  let re = "^";
  let i = 0;
  const bad = () => new Error(`syntax error in pattern "${pattern}"`);
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === "*") {
      re += "[^/]*";
      i++;
    } else if (c === "?") {
      re += "[^/]";
      i++;
    } else if (c === "\\") {
      if (i + 1 >= pattern.length) throw bad();
      re += escapeChar(pattern[i + 1]!);
      i += 2;
    } else if (c === "[") {
      i++;
      let cls = "[";
      if (pattern[i] === "^") {
        cls += "^";
        i++;
      }
      let n = 0;
      while (true) {
        if (i >= pattern.length) throw bad();
        if (pattern[i] === "]" && n > 0) {
          i++;
          break;
        }
        let lo = pattern[i]!;
        if (lo === "\\") {
          i++;
          if (i >= pattern.length) throw bad();
          lo = pattern[i]!;
        } else if (lo === "]" || lo === "-") throw bad();
        i++;
        cls += escapeClassChar(lo);
        if (pattern[i] === "-") {
          i++;
          let hi = pattern[i];
          if (hi === undefined || hi === "]") throw bad();
          if (hi === "\\") {
            i++;
            hi = pattern[i];
            if (hi === undefined) throw bad();
          }
          i++;
          if (hi < lo) throw bad();
          cls += `-${escapeClassChar(hi)}`;
        }
        n++;
      }
      re += `${cls}]`;
    } else {
      re += escapeChar(c);
      i++;
    }
  }
  return new RegExp(`${re}$`, "s");
}

function escapeChar(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

function escapeClassChar(c: string): string {
  return /[\]\\^-]/.test(c) ? `\\${c}` : c;
}

function baseName(p: string): string {
  const i = p.lastIndexOf("/");
  return i >= 0 ? p.slice(i + 1) : p;
}

export class HelmIgnore {
  private readonly rules: Rule[] = [];

  /** Parse `.helmignore` text; `label` names the file in errors. Helm's default rule is added last. */
  static parse(text: string, label = ".helmignore"): HelmIgnore {
    const h = new HelmIgnore();
    for (const [n, line] of text.split(/\r?\n/).entries()) {
      try {
        h.add(line);
      } catch (err) {
        throw new ChartError(`${label}:${n + 1}: ${(err as Error).message}`, label, "CHART_INVALID");
      }
    }
    h.add("templates/.?*");
    return h;
  }

  private add(line: string): void {
    let rule = line.trim();
    if (rule === "" || rule.startsWith("#")) return;
    if (rule.includes("**")) throw new Error(`double-star (**) syntax is not supported: "${rule}"`);
    const raw = rule;
    globToRegExp(rule);
    let negate = false;
    if (rule.startsWith("!")) {
      negate = true;
      rule = rule.slice(1);
    }
    let mustDir = false;
    if (rule.endsWith("/")) {
      mustDir = true;
      rule = rule.slice(0, -1);
    }
    let match: (path: string) => boolean;
    if (rule.startsWith("/")) {
      const re = globToRegExp(rule.slice(1));
      match = (p) => re.test(p);
    } else if (rule.includes("/")) {
      const re = globToRegExp(rule);
      match = (p) => re.test(p);
    } else {
      const re = globToRegExp(rule);
      match = (p) => re.test(baseName(p));
    }
    this.rules.push({ raw, negate, mustDir, match });
  }

  /** Is `path` (relative to the chart root, `/`-separated) ignored? */
  ignores(path: string, isDir: boolean): boolean {
    if (path === "" || path === "." || path === "./") return false;
    for (const r of this.rules) {
      if (r.negate) {
        if (r.mustDir && !isDir) return true;
        if (!r.match(path)) return true;
        continue;
      }
      if (r.mustDir && !isDir) continue;
      if (r.match(path)) return true;
    }
    return false;
  }
}
