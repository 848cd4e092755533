"""Produce N records with confluent-kafka, read them back in a consumer group.

Usage: group_confluent_kafka.py BOOTSTRAP TOPIC GROUP N TIMEOUT_S

Prints one JSON object per consumed record ({"p", "o", "v"}) and a final
{"summary": ...} line with the offsets the synchronous commit stored, then
exits 0. Exits 1 on a delivery, consume or commit error, or if fewer than N
records were read before the timeout.
"""
import json
import sys
import time

from confluent_kafka import Consumer, Producer


def main():
    bootstrap, topic, group, n, timeout = sys.argv[1:6]
    n, deadline = int(n), time.time() + float(timeout)

    errors = []
    delivered = [0]

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered[0] += 1

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "client.id": "e2e-confluent-producer"})
    for i in range(n):
        producer.produce(topic, key=str(i), value=str(i), on_delivery=on_delivery)
        producer.poll(0)
    left = producer.flush(60)
    if left or errors or delivered[0] != n:
        print("produce: %d undelivered, %d delivered, errors %s" % (left, delivered[0], errors[:5]), file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"produced": n}), flush=True)

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "client.id": "e2e-confluent-consumer",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got = 0
    while got < n and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error():
            print("consume: %s" % m.error(), file=sys.stderr)
            sys.exit(1)
        print(json.dumps({"p": m.partition(), "o": m.offset(), "v": m.value().decode()}))
        got += 1
    committed = {}
    if got:
        for tp in consumer.commit(asynchronous=False):
            if tp.error is not None:
                print("commit %s/%d: %s" % (tp.topic, tp.partition, tp.error), file=sys.stderr)
                sys.exit(1)
            committed[str(tp.partition)] = tp.offset
    consumer.close()
    print(json.dumps({"summary": {"consumed": got, "committed": committed}}), flush=True)
    if got < n:
        print("read %d of %d records before the timeout" % (got, n), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
