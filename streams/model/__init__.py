"""What the product is about, with no behaviour of its own: event time, the input events, a
customer's state, the segment changes it emits and the sliding windows it counts in.

The lowest layer: it imports nothing of the project but :mod:`streams.errors`."""
