"""A confluent-kafka (librdkafka) transactional producer: one aborted and
one committed transaction of n records each to topic, then a
read_committed Consumer reads the topic back and prints each value it
sees, one JSON line each, then a summary line.

usage: txn_confluent_kafka.py BOOTSTRAP TOPIC N TIMEOUT_S
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer

bootstrap, topic, n, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"py-confluent-{topic}",
              "transaction.timeout.ms": 30000})
p.init_transactions(30)
for name, commit in (("py-abort", False), ("py-commit", True)):
    p.begin_transaction()
    for i in range(n):
        p.produce(topic, value=f"{name}-{i}".encode())
    p.flush(30)
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)
print(json.dumps({"produced": 2 * n}), flush=True)

c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
              "isolation.level": "read_committed", "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
c.subscribe([topic])
seen = 0
deadline = time.time() + timeout
quiet_until = None
while time.time() < deadline:
    m = c.poll(0.5)
    if m is None:
        if quiet_until is not None and time.time() > quiet_until:
            break
        continue
    if m.error():
        raise KafkaException(m.error())
    seen += 1
    print(json.dumps({"v": m.value().decode()}), flush=True)
    if seen >= n and quiet_until is None:
        quiet_until = time.time() + 2  # anything past the commits shows up by then
c.close()
print(json.dumps({"summary": {"consumed": seen}}), flush=True)
