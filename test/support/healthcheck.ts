import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface HealthcheckResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `scripts/healthcheck.sh` with the given arguments (URL, -k); never rejects: the exit code says how it went. */
export async function healthcheck(args: string[], timeoutS = 2): Promise<HealthcheckResult> {
  try {
    const { stdout, stderr } = await run("bash", ["scripts/healthcheck.sh", ...args], {
      env: { ...process.env, HEALTHCHECK_TIMEOUT: String(timeoutS) },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as HealthcheckResult;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
