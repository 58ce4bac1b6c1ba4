"""The user's command line: render, status, logs, run (which starts the controller) and step."""

from .main import kubectl_plugin_main, main

__all__ = ["kubectl_plugin_main", "main"]
