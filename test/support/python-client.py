"""An independent Socket.IO client (python-socketio) for interoperability tests.

usage: python-client.py URL NAMESPACE TOKEN ROOM COUNT
Prints one JSON line per event ({"event": name, "payload": ...}), the subscribe ack as {"ack": ...},
or {"connect_error": ...}; exits after COUNT events or 15 seconds.
"""
import json
import sys
import threading

import socketio

url, namespace, token, room, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
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


@client.event(namespace=namespace)
def connect():
    ack = client.call("subscribe", {"room": room}, namespace=namespace, timeout=10)
    emit({"ack": ack})


@client.event(namespace=namespace)
def connect_error(data):
    emit({"connect_error": data})
    done.set()


@client.on("*", namespace=namespace)
def any_event(event, payload):
    emit({"event": event, "payload": payload})
    received.append(event)
    if len(received) >= count:
        done.set()


try:
    client.connect(url, namespaces=[namespace], auth={"token": token}, transports=["websocket"], wait_timeout=10)
except socketio.exceptions.ConnectionError as error:
    emit({"connect_error": str(error)})
    sys.exit(0)
done.wait(15)
client.disconnect()
