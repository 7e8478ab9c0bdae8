"""The engine on Kafka: the worker and its parts (settings, source reader, group consumer,
event-time alignment, table views and changelog writes, identity hand-offs, commit, web).
The only layer that imports faust and aiokafka, beside the tools."""
