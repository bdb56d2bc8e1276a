"""Ray Serve applications that run in the cluster. Each module holds one deployment."""
