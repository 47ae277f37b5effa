import assert from "node:assert/strict";
import { redactUrl } from "../../src/observability/redact.js";

describe("redactUrl (unit)", () => {
  it("hides the password of the user part and of every parameter that names a credential", () => {
    assert.equal(redactUrl("postgresql://app:s3cret@db:5432/switchyard"), "postgresql://app:***@db:5432/switchyard");
    const redacted = redactUrl("postgresql://app@db/switchyard?password=s3cret&sslpassword=k3y&sslmode=require&application_name=sy");
    assert.ok(!redacted.includes("s3cret") && !redacted.includes("k3y"), redacted);
    assert.match(redacted, /sslmode=require/);
    assert.match(redacted, /application_name=sy/);
    assert.ok(!redactUrl("rediss://:tok@cache:6380/0?auth_token=abc").includes("abc"));
    assert.equal(redactUrl("not a url"), "<unparseable URL>");
  });
});
