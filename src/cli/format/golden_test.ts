import { GOLDEN_CASES, GOLDEN_MISC } from "./golden_data.ts";
import { renderDu } from "./du.ts";
import { createPrunePrinter } from "./prune.ts";
import { renderWorkers } from "./workers.ts";
import { renderInfo } from "./info.ts";
import { parseTemplate, TemplateError } from "./template.ts";
import { tabwrite } from "./tabwriter.ts";
import {
  formatBytes,
  formatBytesG,
  formatGoDuration,
  formatGoFloat,
  parseGoDuration,
} from "./units.ts";
import type { Info, UsageInfo, WorkerInfo } from "./types.ts";

function assertEq(actual: unknown, expected: unknown, msg: string): void {
  if (actual !== expected) {
    throw new Error(
      `${msg}\n--- expected ---\n${JSON.stringify(expected)}\n--- actual ---\n${
        JSON.stringify(actual)
      }`,
    );
  }
}

function run(c: (typeof GOLDEN_CASES)[number]): { out: string; error: string } {
  let out = "";
  try {
    const opts = {
      verbose: c.Verbose ?? false,
      template: c.Format ? parseTemplate(c.Format) : undefined,
      filter: c.Filter ?? [],
    };
    switch (c.Cmd) {
      case "du":
        out = renderDu(c.Usage as unknown as UsageInfo[], opts);
        break;
      case "prune": {
        const p = createPrunePrinter(opts);
        for (const u of c.Usage as unknown as UsageInfo[]) {
          try {
            out += p.record(u);
          } catch (e) {
            // upstream panics inside the printing goroutine
            if (e instanceof TemplateError) {
              throw new TemplateError("PANIC: " + e.message, e.template, e.partialOutput);
            }
            throw e;
          }
        }
        out += p.end();
        break;
      }
      case "workers":
        out = renderWorkers(c.Workers as unknown as WorkerInfo[], opts);
        break;
      case "info":
        out = renderInfo({ BuildkitVersion: c.Info } as unknown as Info, opts);
        break;
    }
  } catch (e) {
    if (e instanceof TemplateError) return { out: out + e.partialOutput, error: e.message };
    throw e;
  }
  return { out, error: "" };
}

// Go prints real heap addresses for pointers nested in slices; compare them loosely.
const addr = (s: string) => s.replace(/0x[0-9a-f]{6,}/g, "0xADDR");

for (const c of GOLDEN_CASES) {
  Deno.test(`golden: ${c.Name}`, () => {
    const r = run(c);
    assertEq(r.error, c.error, `${c.Name}: error`);
    assertEq(addr(r.out), addr(c.expect), `${c.Name}: output`);
  });
}

Deno.test("golden: units.Bytes %.2f and %g", () => {
  for (const [n, f, g] of GOLDEN_MISC.bytes) {
    assertEq(formatBytes(n as number), f, `%.2f of ${n}`);
    assertEq(formatBytesG(n as number), g, `%g of ${n}`);
  }
});

Deno.test("golden: time.Duration.String", () => {
  for (const [n, s] of GOLDEN_MISC.durations) {
    assertEq(formatGoDuration(n as number), s, `duration ${n}`);
  }
});

Deno.test("golden: time.ParseDuration", () => {
  for (const [s, want] of GOLDEN_MISC.parse) {
    let got: string;
    try {
      got = parseGoDuration(s as string).toString();
    } catch (e) {
      got = "ERR " + (e as Error).message;
    }
    assertEq(got, want, `parse ${s}`);
  }
});

Deno.test("golden: float formatting", () => {
  for (const [f, want] of GOLDEN_MISC.floats) {
    const x = f as number;
    const got = [
      formatGoFloat(x, "g", -1),
      formatGoFloat(x, "f", 2),
      formatGoFloat(x, "g", -1),
      formatGoFloat(x, "e", 6),
      formatGoFloat(x, "g", 3),
      formatGoFloat(x, "f", 6),
    ].join("|");
    assertEq(got, want, `float ${f}`);
  }
});

Deno.test("golden: tabwriter", () => {
  for (const [input, a, b, c] of GOLDEN_MISC.tabs) {
    assertEq(tabwrite(input), a, `tab(1,8,1,\\t) ${JSON.stringify(input)}`);
    assertEq(tabwrite(input, 0, 0, 1, " "), b, `tab(0,0,1,' ') ${JSON.stringify(input)}`);
    assertEq(tabwrite(input, 5, 4, 2, "."), c, `tab(5,4,2,'.') ${JSON.stringify(input)}`);
  }
});
