"""`make bench`: our chat server against a bare python-socketio server, by hand.

See docs/benchmark.md. Never run in CI: it pins processes to cores, creates a
database and loads the machine for minutes.
"""
