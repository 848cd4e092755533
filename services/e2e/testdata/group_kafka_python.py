"""Produce N records with kafka-python, read them back in a consumer group.

Usage: group_kafka_python.py BOOTSTRAP TOPIC GROUP N TIMEOUT_S

Prints one JSON object per consumed record ({"p", "o", "v"}) and a final
{"summary": ...} line with the committed offsets, then exits 0. Exits 1 if
fewer than N records were read before the timeout.
"""
import json
import logging
import os
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

logging.basicConfig(stream=sys.stderr, level=os.environ.get("KAFKA_PYTHON_LOG_LEVEL", "WARNING"),
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")


def main():
    bootstrap, topic, group, n, timeout = sys.argv[1:6]
    n, deadline = int(n), time.time() + float(timeout)

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                             client_id="e2e-kafka-python-producer")
    futures = [producer.send(topic, key=str(i).encode(), value=str(i).encode()) for i in range(n)]
    producer.flush(timeout=60)
    for f in futures:
        f.get(timeout=10)  # raises on a failed send
    producer.close()
    print(json.dumps({"produced": n, "api_version": list(producer.config["api_version"])}), flush=True)

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             client_id="e2e-kafka-python-consumer",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    got = 0
    while got < n and time.time() < deadline:
        for tp, msgs in consumer.poll(timeout_ms=500).items():
            for m in msgs:
                print(json.dumps({"p": tp.partition, "o": m.offset, "v": m.value.decode()}))
                got += 1
    consumer.commit()
    parts = consumer.assignment()
    committed = {str(tp.partition): consumer.committed(tp) for tp in parts}
    consumer.close()
    print(json.dumps({"summary": {"consumed": got, "committed": committed}}), flush=True)
    if got < n:
        print("read %d of %d records before the timeout" % (got, n), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
