import { execFileSync } from "node:child_process";

/** Debian's python, where apt-get installs python3-socketio (a python3 earlier on PATH may not have it). */
export const PYTHON = "/usr/bin/python3";

/** Whether python-socketio (and its WebSocket client) can be imported: the interoperability tests need it. */
export function pythonSocketIoAvailable(): boolean {
  try {
    execFileSync(PYTHON, ["-c", "import socketio, websocket"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
