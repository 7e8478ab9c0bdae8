"""The rule language: the fields a rule may read, its expressions compiled to Python closures,
the pack of segments loaded and validated from rule files, and the problems a rule author sees.

Imports only :mod:`streams.model`."""
