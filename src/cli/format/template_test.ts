import { executeTemplate, parseTemplate, TemplateError } from "./template.ts";
import { ptrTo, sliceOf } from "./gotypes.ts";
import { InfoPtrType, type UsageInfo, UsageInfoListType, UsageInfoType } from "./types.ts";

function eq(a: unknown, b: unknown): void {
  if (a !== b) throw new Error(`expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`);
}

const rec: UsageInfo = {
  ID: "abc",
  Mutable: true,
  InUse: false,
  Size: 1234,
  CreatedAt: { seconds: 1764429600n, nanos: 500000000 },
  LastUsedAt: null,
  UsageCount: 2,
  Parents: [],
  Description: "d <&>",
  RecordType: "regular",
  Shared: false,
};
const info = { BuildkitVersion: { Package: "p", Version: "v", Revision: "r" } };

// [template, Go type, data, expected output or error message]
const cases: [string, unknown, unknown, string][] = [
  [
    "json",
    UsageInfoType,
    rec,
    '{"id":"abc","mutable":true,"inUse":false,"size":1234,' +
    '"createdAt":"2025-11-29T15:20:00.5Z","lastUsedAt":null,"usageCount":2,"parents":null,' +
    '"description":"d <&>","recordType":"regular","shared":false}',
  ],
  [
    "{{.ID}} {{.Size}} {{.CreatedAt}} {{.LastUsedAt}}",
    UsageInfoType,
    rec,
    "abc 1234 2025-11-29 15:20:00.5 +0000 UTC <nil>",
  ],
  ["{{range .}}{{.ID}},{{end}}", UsageInfoListType, [rec, { ...rec, ID: "def" }], "abc,def,"],
  ["{{json .}}", UsageInfoListType, [], "null"],
  ["{{len .}} {{(index . 0).RecordType}}", sliceOf(ptrTo(UsageInfoType)), [rec], "1 regular"],
  [
    "{{if .Mutable}}m{{else}}-{{end}} {{with .Parents}}p{{else}}none{{end}}",
    UsageInfoType,
    rec,
    "m none",
  ],
  [
    '{{- .ID -}}  \n  {{- printf "%5d|%-4s|%q" .Size .ID .RecordType }}',
    UsageInfoType,
    rec,
    'abc 1234|abc |"regular"',
  ],
  [
    "{{.BuildkitVersion | json}}",
    InfoPtrType,
    info,
    '{"package":"p","version":"v","revision":"r"}',
  ],
  ["{{.}}", InfoPtrType, info, "{{p v r }}"],
  [
    "{{.Foo}}",
    InfoPtrType,
    info,
    'ERR template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo in type *client.Info',
  ],
  ["{{.ID", UsageInfoType, rec, "ERR template: :1: unclosed action"],
  ['{{join .Parents ","}}', UsageInfoType, rec, 'ERR template: :1: function "join" not defined'],
  ["a\n{{if .ID}}", UsageInfoType, rec, "ERR template: :2: unexpected EOF"],
];

for (const [tmpl, type, data, want] of cases) {
  Deno.test(`template: ${tmpl}`, () => {
    let got: string;
    try {
      got = executeTemplate(tmpl, type as never, data);
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      got = "ERR " + e.message;
    }
    eq(got, want);
  });
}

Deno.test("template: execution errors keep the output written so far", () => {
  const t = parseTemplate("{{range .}}[{{.ID}}]{{.Nope}}{{end}}");
  try {
    t.execute({ type: UsageInfoListType, value: [rec] });
    throw new Error("no error");
  } catch (e) {
    if (!(e instanceof TemplateError)) throw e;
    eq(e.partialOutput, "[abc]");
    eq(e.template, "{{range .}}[{{.ID}}]{{.Nope}}{{end}}");
  }
});

Deno.test("template: the json alias expands to {{json .}}", () => {
  eq(parseTemplate("json").text, "{{json .}}");
});
