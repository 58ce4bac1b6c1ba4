"""Attach mode (pure: no I/O). A pipeline with spec.attach lends its steps to the Pods of a user's
Deployment or StatefulSet, whose Pod template carries the label initpipeline.dev/inject=<pipeline>:

- the admission webhook adds the every-Pod steps to each such Pod as it is created (`inject`), and a
  scheduling gate while its revision's once-steps have not succeeded (inject.py);
- the operator finds the workload's current revision (revision.py), runs that revision's once-steps in
  one Job (job.py) and then lifts the gates (plan.py), and reports it (status.py);
- `initpipeline render` shows a workload's Pod and Job without a cluster (render.py).

The user's workload is never written: its Pods are the only thing the operator touches.
"""
