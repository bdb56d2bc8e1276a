"""The platform's use cases in plain Python: what routes call, with the rules in one place."""
