"""The engine over files: ``segmenter replay``, ``segmenter backtest`` with its report, and the
rule tests of ``segmenter rules test``. No Kafka."""
