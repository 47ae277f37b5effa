import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { connect, connectError, EventRecorder, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { healthcheck } from "./support/healthcheck.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { mintToken } from "./support/tokens.js";

const run = promisify(execFile);

/** A self-signed certificate for localhost and 127.0.0.1, valid one day, made by openssl in `dir`. */
async function selfSignedCertificate(dir: string): Promise<{ certFile: string; keyFile: string; ca: string }> {
  const certFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-days",
    "1",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ]);
  return { certFile, keyFile, ca: await readFile(certFile, "utf8") };
}

interface HttpsAnswer {
  status: number;
  body: { [key: string]: unknown };
}

/** One HTTPS request with the given CA trusted (Node's fetch takes no CA without an extra package). */
function httpsJson(url: string, options: { ca?: string; method?: string; token?: string; body?: unknown } = {}): Promise<HttpsAnswer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const request = https.request(
      url,
      {
        method: options.method ?? "GET",
        ca: options.ca,
        headers: {
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...(payload ? { "content-type": "application/json" } : {}),
        },
        timeout: 10_000,
      },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (text += chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as HttpsAnswer["body"] }));
      },
    );
    request.on("timeout", () => request.destroy(new Error("timed out")));
    request.on("error", reject);
    request.end(payload);
  });
}

/** Sends a plain-text HTTP request to the port and returns whatever comes back before the connection ends. */
function plainHttpExchange(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let answer = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => (answer += chunk));
    socket.on("connect", () => socket.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on("error", () => undefined); // a reset is one of the expected outcomes
    socket.on("close", () => resolve(answer));
  });
}

describe("TLS (TLS_CERT_FILE, TLS_KEY_FILE)", () => {
  let dir: string;
  let ca: string;
  let node: ServerProcess;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "switchyard-tls-"));
    const certificate = await selfSignedCertificate(dir);
    ca = certificate.ca;
    node = await startServer({ TLS_CERT_FILE: certificate.certFile, TLS_KEY_FILE: certificate.keyFile });
    assert.match(node.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(node.logs(), /"url":"https:\/\/127\.0\.0\.1:\d+\/"/, "the ready line names the https URL");
  });
  after(async () => {
    await node?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("serves /health and /ready over HTTPS, and the certificate is really checked", async () => {
    const health = await httpsJson(`${node.url}/health`, { ca });
    assert.equal(health.status, 200);
    assert.equal(health.body.status, "ok");
    const ready = await httpsJson(`${node.url}/ready`, { ca });
    assert.equal(ready.status, 200);
    assert.equal(ready.body.status, "ready");
    // Without the CA the same request is refused by the client: the test's trust is not a bypass.
    await assert.rejects(httpsJson(`${node.url}/health`), /self[- ]signed/i);
  });

  for (const transport of ["websocket", "polling"] as const) {
    it(`a ${transport === "websocket" ? "WSS" : "HTTPS long-polling"} client connects, subscribes and receives an event`, async () => {
      const token = mintToken({ tenant: freshTenant("tls") });
      const socket = await connect(node.url, "pools", { token, ca, transports: [transport] });
      assert.equal(socket.io.engine.transport.name, transport);
      const seen = new EventRecorder(socket);
      const ack = await subscribe(socket, "pools");
      assert.equal(ack.ok, true, JSON.stringify(ack));
      const created = await httpsJson(`${node.url}/api/v1/pools`, { ca, method: "POST", token, body: { name: `over-${transport}` } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const event = await seen.next("pool.created", "pools");
      assert.equal((event.data as { pool: { name: string } }).pool.name, `over-${transport}`);
    });
  }

  it("a client that does not trust the certificate cannot connect", async () => {
    const failure = await connectError(node.url, "pools", { token: mintToken({ tenant: freshTenant("tls") }) });
    // socket.io-client wraps the WebSocket's ErrorEvent; its `message` is the TLS error.
    const cause = (failure as { description?: { message?: string } }).description?.message ?? "";
    assert.match(cause, /self[- ]signed certificate/i, `${failure.message}: ${cause}`);
  });

  it("does not serve plain HTTP on its port", async () => {
    const answer = await plainHttpExchange(node.port);
    assert.doesNotMatch(answer, /^HTTP\//, "no HTTP response to a plain-text request");
    await assert.rejects(fetch(`http://127.0.0.1:${node.port}/health`));
    const failure = await connectError(`http://127.0.0.1:${node.port}`, "pools", { token: mintToken({ tenant: freshTenant("tls") }) });
    // The handshake fails at the transport (no WebSocket over plain HTTP), not a refusal the server answered.
    assert.equal(failure.message, "websocket error");
    assert.equal(failure.data, undefined, JSON.stringify(failure.data));
    // The node is still up and serving HTTPS after the plain-text attempts.
    assert.equal((await httpsJson(`${node.url}/health`, { ca })).status, 200);
  });

  it("healthcheck.sh -k passes; without -k it fails naming the certificate problem", async () => {
    const url = `https://127.0.0.1:${node.port}`;
    const insecure = await healthcheck(["-k", url], 5);
    assert.equal(insecure.code, 0, insecure.stderr);
    assert.match(insecure.stdout, /^ok: https:\/\/127\.0\.0\.1:\d+ healthy/);
    const strict = await healthcheck([url], 5);
    assert.equal(strict.code, 1);
    assert.match(strict.stderr, /^unhealthy: \/health unreachable \(TLS certificate not accepted: .*self[- ]signed/i);
    const plain = await healthcheck([`http://127.0.0.1:${node.port}`], 5);
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /^unhealthy: \/health unreachable/);
  });
});
