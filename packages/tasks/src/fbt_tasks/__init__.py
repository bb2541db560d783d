"""The tasks, written once: plain typed functions that import no queue library.

Import the modules themselves (``fbt_tasks.jobs``, ``fbt_tasks.settings``): this package imports nothing, so
a process that needs one stdlib-only module (a fidelity reference worker, ``fbt_tasks.reference_task``) does
not load pydantic, Pillow and the mail code with it.
"""
