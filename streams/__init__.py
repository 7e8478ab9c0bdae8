"""segmenter: real-time customer segmentation on Kafka.

The package is called ``streams`` for historical reasons of layout; the product and its
console command are called ``segmenter``.
"""

__version__ = "0.1.0"
