"""Reference consumer for the Kafka benchmark: librdkafka (through confluent-kafka) reading a
whole topic from its low to its high watermarks and discarding the records — what
`kcat -C -e > /dev/null` does. (Debian's kcat links librdkafka 2.0.2, whose ApiVersion request
the test broker cannot parse.)"""
import sys
import time

from confluent_kafka import Consumer, TopicPartition

brokers, topic = sys.argv[1], sys.argv[2]
c = Consumer({"bootstrap.servers": brokers, "group.id": "raw-consume", "enable.auto.commit": False})
parts = c.list_topics(topic, timeout=15).topics[topic].partitions
ends, assign = {}, []
for p in parts:
    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
    if high > low:
        ends[p] = high
        assign.append(TopicPartition(topic, p, low))
start = time.perf_counter()
c.assign(assign)
count, done = 0, set()
while len(done) < len(ends):
    for m in c.consume(num_messages=10000, timeout=1.0):
        if m.error():
            continue
        count += 1
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
elapsed = time.perf_counter() - start
print(f"{count} {elapsed:.3f}")
