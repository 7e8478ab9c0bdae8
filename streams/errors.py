"""The root of every error segmenter raises on purpose, so a caller can catch ours and only ours."""


class SegmenterError(Exception):
    """Base class: the message says what was wrong, where, and how to fix it."""
