"""Each execution's output stays its own, from the threads its code starts too. Run in a
subprocess: routing replaces sys.stdout and follows threads for the rest of the process's life."""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, logging, sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    from rayline.execution_context import ExecutionScope, current_execution_id, current_scope
    from rayline.runtime.log_capture import follow_executions_into_threads, install_routing

    lines = {}
    def scope(name):
        return ExecutionScope(name, lambda stream, line: lines.setdefault(name, []).append((stream, line)))

    install_routing(scope(None))
    follow_executions_into_threads()
    pool = ThreadPoolExecutor(2)  # shared by every execution, like a user's module-level pool

    def from_thread(name):
        for i in range(20):
            print(f"{name} thread {i} {current_execution_id()}")
            time.sleep(0.001)

    def execution(name):
        current_scope.set(scope(name))
        thread = threading.Thread(target=from_thread, args=(name,))
        thread.start()  # prints while the execution itself prints: lines must not mix
        for i in range(20):
            print(f"{name} main {i}")
            time.sleep(0.001)
        thread.join()
        pool.submit(lambda: print(f"{name} pool {current_execution_id()}")).result()
        logging.warning("%s logging", name)
        print(f"{name} stderr", file=sys.stderr)

    background = threading.Thread(target=lambda: print("no execution"))
    background.start(); background.join()
    runners = [threading.Thread(target=execution, args=(f"e{i}",)) for i in range(6)]
    for r in runners: r.start()
    for r in runners: r.join()
    print(json.dumps({str(k): v for k, v in lines.items()}), file=sys.__stdout__)
""")


def test_lines_go_to_the_execution_that_printed_them_from_its_threads_too():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    lines = json.loads(out.stdout.strip().splitlines()[-1])
    assert lines["None"] == [["stdout", "no execution"]]
    for i in range(6):
        name = f"e{i}"
        got = lines[name]
        assert [line for stream, line in got if "main" in line] == [f"{name} main {n}" for n in range(20)]
        assert [line for stream, line in got if "thread" in line] == [f"{name} thread {n} {name}" for n in range(20)]
        assert ["stdout", f"{name} pool {name}"] in got
        assert ["stderr", f"WARNING:root:{name} logging"] in got
        assert ["stderr", f"{name} stderr"] in got
        assert all(line.startswith(name + " ") or name in line for _, line in got), got
