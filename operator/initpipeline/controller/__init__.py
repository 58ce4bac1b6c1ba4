"""The operator: kopf's handlers, the reconciler and every write to the cluster, the Kubernetes client,
the work queue and its timers, per-pipeline memory, settings, metrics and the log format.

Imports spec/ and core/, never cli/.
"""
