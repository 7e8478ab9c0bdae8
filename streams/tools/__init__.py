"""What a user runs beside the worker: the traffic simulator, its Kafka producer and the demo's
live view of the changes topic."""
