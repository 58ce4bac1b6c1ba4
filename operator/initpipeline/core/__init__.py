"""Pure decisions: what a pipeline expands into (Pod, workload, once-Job), a Pod's and a workload's
status, the plan of a reconcile pass, and when a status write may wait.

Imports only spec/; no kopf, no I/O, no threads, no clock: the time comes in as an argument.
"""
