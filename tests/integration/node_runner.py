"""Runs a Node script from node/ against a running hermod (shared by ws_node and browser)."""

import os
import subprocess

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


def run_node_script(test, script, server, *args, timeout=120):
    """Runs `node node/<script> PORT args...`; the test fails unless it exits 0."""
    port = server.port
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        test.fail("node modules missing: run `npm ci` in %s" % NODE_DIR)
    try:
        done = subprocess.run(["node", os.path.join(NODE_DIR, script), str(port)] + list(args),
                              cwd=NODE_DIR, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        test.fail("%s timed out after %ss; output:\n%s\n%s\nhermod:\n%s"
                  % (script, timeout, e.stdout, e.stderr, server.stderr_text()))
    print(done.stdout, end="")
    test.assertEqual(done.returncode, 0, "%s failed:\n%s\n%s\nhermod:\n%s"
                     % (script, done.stdout, done.stderr, server.stderr_text()))
    return done.stdout
