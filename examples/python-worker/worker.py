"""A Switchyard pool worker in Python, written from the worker protocol in docs/protocol.md alone.

It needs only the hub's address and a pools:work token: jobs come over its Socket.IO connection (hub mode), so it
never talks to Redis or PostgreSQL. It runs `echo`, `sleep` and its own `py.upper`.

    pip install "python-socketio[client]" websocket-client     # or: apt-get install python3-socketio python3-websocket
    SWITCHYARD_URL=http://127.0.0.1:3000 WORKER_TOKEN=<pools:work token> python3 worker.py

Settings (environment): WORKER_CONCURRENCY (runs at once, default 2), WORKER_ID (default py-<random>).
"""
import os
import signal
import sys
import threading
import time
import uuid

import socketio

URL = os.environ.get("SWITCHYARD_URL", "http://127.0.0.1:3000").split(",")[0]
TOKEN = os.environ.get("WORKER_TOKEN")
CONCURRENCY = int(os.environ.get("WORKER_CONCURRENCY", "2"))
WORKER_ID = os.environ.get("WORKER_ID", "py-" + uuid.uuid4().hex[:8])
NS = "/pools"


class Cancelled(Exception):
    pass


class NonRetryable(Exception):
    """A failure another attempt cannot fix (the hub does not retry it)."""


# --- handlers: payload in, JSON-serialisable result out; `run` can report progress and sees cancellation ------------

def echo(payload, run):
    return payload


def sleep(payload, run):
    ms = int((payload or {}).get("ms", 100))
    deadline = time.monotonic() + ms / 1000
    while time.monotonic() < deadline:
        if run.cancelled.wait(0.01):
            raise Cancelled()
    return {"slept": ms}


def upper(payload, run):
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        raise NonRetryable("py.upper expects {\"text\": string}")
    run.progress(50, "uppercasing")
    return {"text": payload["text"].upper(), "by": WORKER_ID}


HANDLERS = {"echo": echo, "sleep": sleep, "py.upper": upper}

# --- the protocol ----------------------------------------------------------------------------------------------------

sio = socketio.Client(reconnection=True, reconnection_delay=0.25, reconnection_delay_max=2)
runs = {}  # taskId -> Run, for this connection
runs_lock = threading.Lock()
heartbeat_stop = threading.Event()
stopping = threading.Event()


def log(message, **fields):
    details = " ".join(f"{key}={value}" for key, value in fields.items())
    print(f"[{WORKER_ID}] {message} {details}".rstrip(), flush=True)


class Run:
    def __init__(self, task_id):
        self.task_id = task_id
        self.cancelled = threading.Event()

    def progress(self, percent, detail=None):
        message = {"taskId": self.task_id, "progress": max(0, min(100, percent))}
        if detail is not None:
            message["detail"] = str(detail)[:1000]
        sio.emit("task.progress", message, namespace=NS)


def grant(credit):
    """Tell the hub how many more jobs this worker can take (credit-based flow control)."""
    if credit > 0 and not stopping.is_set():
        sio.emit("worker.credit", {"credit": credit}, namespace=NS)


@sio.on("worker.welcome", namespace=NS)
def on_welcome(welcome):
    global heartbeat_stop
    log("registered", pool=welcome["poolId"])
    heartbeat_stop.set()  # the previous connection's heartbeat
    stop = heartbeat_stop = threading.Event()

    def beat():
        while not stop.wait(welcome["heartbeatIntervalMs"] / 1000):
            sio.emit("worker.heartbeat", {}, namespace=NS)

    threading.Thread(target=beat, daemon=True).start()
    grant(CONCURRENCY)


@sio.on("worker.rejected", namespace=NS)
def on_rejected(error):
    log("refused by the hub", code=error.get("code"), message=error.get("message"))


@sio.on("task.run", namespace=NS)
def on_run(job):
    run = Run(job["taskId"])
    with runs_lock:
        runs[run.task_id] = run
    handler = HANDLERS.get(job["type"])
    try:
        if handler is None:
            raise NonRetryable(f"no handler for {job['type']!r}")
        outcome = {"taskId": run.task_id, "result": handler(job["payload"], run)}
    except Cancelled:
        outcome = None  # the hub stopped it and reported it already
    except NonRetryable as error:
        outcome = {"taskId": run.task_id, "error": {"message": str(error)[:4000], "retryable": False}}
    except Exception as error:  # noqa: BLE001 - any other failure is retried by the hub
        outcome = {"taskId": run.task_id, "error": {"message": f"{type(error).__name__}: {error}"[:4000], "retryable": True}}
    with runs_lock:
        runs.pop(run.task_id, None)
    if outcome is not None and not run.cancelled.is_set():
        try:
            sio.call("task.done", outcome, namespace=NS, timeout=10)
        except socketio.exceptions.TimeoutError:
            log("no ack for a task's outcome", task=run.task_id)
    log("ran", task=run.task_id, type=job["type"], ok=outcome is not None and "result" in outcome)
    grant(1)


@sio.on("task.cancel", namespace=NS)
def on_cancel(cancel):
    with runs_lock:
        run = runs.get(cancel["taskId"])
    if run:
        run.cancelled.set()


@sio.event(namespace=NS)
def disconnect():
    # Runs belong to the connection: the hub gave them up (they run again elsewhere).
    with runs_lock:
        for run in runs.values():
            run.cancelled.set()
        runs.clear()
    if not stopping.is_set():
        log("disconnected; reconnecting")


def main():
    if not TOKEN:
        sys.exit("WORKER_TOKEN is required (a pools:work token for the pool)")
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    hello = {"id": WORKER_ID, "version": "python-example-1", "types": ["py.upper"]}
    while True:
        try:
            sio.connect(URL, namespaces=[NS], auth={"token": TOKEN, "worker": hello}, transports=["websocket"], wait_timeout=10)
            break
        except socketio.exceptions.ConnectionError as error:
            log("cannot connect yet", error=error)
            if stopping.wait(1):
                return
    log("connected", url=URL)
    stopping.wait()
    log("stopping")
    sio.disconnect()
    log("stopped")


if __name__ == "__main__":
    main()
