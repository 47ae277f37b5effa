"""An independent Socket.IO client (python-socketio) for interoperability tests.

usage: python-client.py URL NAMESPACE TOKEN ROOM COUNT [TIMEOUT_S [AFTER [END_TYPE]]]
Prints one JSON line per event ({"event": name, "payload": ...}), the subscribe ack as {"ack": ...},
or {"connect_error": ...}; subscribes with `after` when AFTER is given (not empty); exits after COUNT events,
after an event of type END_TYPE, or after TIMEOUT_S seconds (15 by default).
"""
import json
import sys
import threading

import socketio

url, namespace, token, room, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 15.0
after = sys.argv[7] if len(sys.argv) > 7 and sys.argv[7] else None
end_type = sys.argv[8] if len(sys.argv) > 8 else None
client = socketio.Client(reconnection=False)
received = []
done = threading.Event()
# python-socketio runs handlers on more than one thread (the subscribe ack's and the events'): print() writes the
# text and its newline separately, so two lines written at once could interleave into one unreadable line.
output = threading.Lock()


def emit(line):
    with output:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


# python-socketio 5.x hands each Engine.IO message to a thread of its own, so two events that arrive in order can
# reach their handlers in either order. Here messages are handled on the thread that reads them, in the order they
# came over the wire, which is the order under test (the subscribe call is made from the main thread for that).
_trigger = client.eio._trigger_event


def _in_wire_order(event, *args, **kwargs):
    if event == "message":
        kwargs["run_async"] = False
    return _trigger(event, *args, **kwargs)


client.eio._trigger_event = _in_wire_order


@client.event(namespace=namespace)
def connect_error(data):
    emit({"connect_error": data})
    done.set()


@client.on("*", namespace=namespace)
def any_event(event, payload):
    emit({"event": event, "payload": payload})
    received.append(event)
    if len(received) >= count or event == end_type:
        done.set()


try:
    client.connect(url, namespaces=[namespace], auth={"token": token}, transports=["websocket"], wait_timeout=10)
except socketio.exceptions.ConnectionError as error:
    emit({"connect_error": str(error)})
    sys.exit(0)
request = {"room": room} if after is None else {"room": room, "after": after}
emit({"ack": client.call("subscribe", request, namespace=namespace, timeout=10)})
done.wait(timeout)
client.disconnect()
