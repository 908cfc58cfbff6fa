"""The benchmark tasks: integration, annotation, multi-modal, cross-species and multi-task.

Each task exports its built-in method records (``builtin_records``) and runs a method from its record.
"""
