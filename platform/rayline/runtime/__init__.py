"""The one place that talks to Ray: the local cluster, Serve, and the tasks that run executions.

``worker`` and ``log_capture`` run inside Ray worker processes but do not call Ray themselves.
"""
