# A small threaded HTTP service on loopback, and its load: what a
# long-running `pytap calls -p` or `flow -p` sees in production. Every
# request comes on a new connection, so ThreadingHTTPServer starts and
# ends a thread per request (thread churn).
#
#   service.py serve            prints "ready PORT", serves until stdin closes
#   service.py load PORT SECS [CLIENTS]
#                               requests /work from CLIENTS threads (default 2)
#                               for SECS seconds, prints the requests made
import http.server
import sys
import textwrap
import threading
import time
import urllib.request

TEXT = "The quick brown fox jumps over the lazy dog. " * 20


def render(n):
    return textwrap.fill(TEXT, 40 + n % 20).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = render(len(self.path))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


def load(port, secs, clients):
    end = time.monotonic() + secs
    made = [0] * clients

    def client(i):
        while time.monotonic() < end:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/work{i}") as r:
                r.read()
            made[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(sum(made), flush=True)


if sys.argv[1] == "serve":
    serve()
else:
    load(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 2)
