"""initpipeline: declarative, observable init steps for Kubernetes Pods."""

__version__ = "0.1.0"
