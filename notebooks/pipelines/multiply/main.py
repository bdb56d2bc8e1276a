print("multiply: module imported")  # at import: in the deployment logs of a low_latency pod


def multiply(a, b):
    print(f"multiplying {a} by {b}")
    return {"result": a * b}
