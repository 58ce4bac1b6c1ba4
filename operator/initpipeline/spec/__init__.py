"""The API: names, labels and defaults; typed views of the resource; validation; redaction.

Imports nothing of the rest of the package, nor kopf, a socket, a thread or the clock.
"""
