import assert from "node:assert/strict";
import { DEFAULT_ADDRESS, parseAddress, resolveAddress } from "./address.ts";
import { BuildctlError, ExitCode } from "../errors.ts";

Deno.test("parseAddress() reads unix:// and tcp:// addresses", () => {
  assert.deepEqual(parseAddress("unix:///run/x.sock"), {
    scheme: "unix",
    path: "/run/x.sock",
    url: "unix:///run/x.sock",
  });
  assert.deepEqual(parseAddress("tcp://127.0.0.1:1234"), {
    scheme: "tcp",
    host: "127.0.0.1",
    port: 1234,
    url: "tcp://127.0.0.1:1234",
  });
});

Deno.test("parseAddress() names the malformed value", () => {
  for (
    const [bad, why] of [
      ["/run/x.sock", /expected a URL/],
      ["unix://relative.sock", /must be absolute/],
      ["tcp://host", /expected tcp:\/\/host:port/],
      ["tcp://host:99999", /out of range/],
      ["http://x:1", /unsupported scheme "http:\/\/"/],
      [`unix:///${"x".repeat(200)}`, /longer than/],
    ] as const
  ) {
    assert.throws(() => parseAddress(bad), (err: unknown) => {
      assert.ok(err instanceof BuildctlError);
      assert.equal(err.exitCode, ExitCode.Usage);
      assert.ok(err.message.includes(`"${bad}"`), err.message);
      assert.match(err.message, why);
      return true;
    });
  }
});

Deno.test("resolveAddress() prefers --addr, then BUILDKIT_HOST, then the default", () => {
  const env = (v?: string) => (k: string) => (k === "BUILDKIT_HOST" ? v : undefined);
  assert.equal(resolveAddress("unix:///a", env("unix:///b")).address.url, "unix:///a");
  assert.equal(resolveAddress(undefined, env("unix:///b")).source, "BUILDKIT_HOST");
  const d = resolveAddress(undefined, env());
  assert.equal(d.isDefault, true);
  assert.equal(d.address.url, DEFAULT_ADDRESS);
});
