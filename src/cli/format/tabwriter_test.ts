import { tabwrite, TabWriter } from "./tabwriter.ts";

function eq(a: unknown, b: unknown): void {
  if (a !== b) throw new Error(`expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`);
}

// Expected values verified against Go's text/tabwriter.
const cases: [string, string, string][] = [
  ["column block", "a\tb\tc\naaa\tbbbbbbbbb\tc\n", "a\tb\t\tc\naaa\tbbbbbbbbb\tc\n"],
  ["header", "ID\tPLATFORMS\nabc\tlinux/amd64\n", "ID\tPLATFORMS\nabc\tlinux/amd64\n"],
  [
    "single-cell lines flush and split blocks",
    "x\n\ty:\tz\n\tlonger key:\tv\nGC:\n\tAll:\tfalse\n",
    "x\n\ty:\t\tz\n\tlonger key:\tv\nGC:\n\tAll:\tfalse\n",
  ],
  ["text after last tab is not a cell", "trailing cell\tend", "trailing cell\tend"],
  ["empty line ends the block", "a\tb\n\nc\td\n", "a\tb\n\nc\td\n"],
  ["runes, not bytes", "ü\tx\nxx\ty\n", "ü\tx\nxx\ty\n"],
];

for (const [name, input, want] of cases) {
  Deno.test(`tabwriter (1,8,1,'\\t'): ${name}`, () => eq(tabwrite(input), want));
}

Deno.test("tabwriter (0,0,1,' ') as used by debug info", () => {
  eq(
    tabwrite("BuildKit:\tpkg v1 rev\nDockerfile:\t1.19.0\n", 0, 0, 1, " "),
    "BuildKit:   pkg v1 rev\nDockerfile: 1.19.0\n",
  );
  eq(tabwrite("a\t\tb\nccccccccc\t\td\n", 0, 0, 1, " "), "a          b\nccccccccc  d\n");
});

Deno.test("tabwriter: output only appears on flush or a single-cell line", () => {
  const tw = new TabWriter(1, 8, 1, "\t");
  tw.write("a\tb\n");
  eq(tw.take(), "");
  tw.write("plain\n");
  eq(tw.take(), "a\tb\nplain\n");
  tw.write("x\ty");
  tw.flush();
  eq(tw.take(), "x\ty");
});
