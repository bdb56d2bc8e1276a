"""The one place that talks to Ray: the local cluster, Serve, and the tasks that run executions.

``worker`` and ``log_capture`` hold the code that runs inside worker processes; it reaches neither
the database nor Ray's APIs (a long execution streams its logs to SQL, importing the store then).
"""
