#!/usr/bin/env python3
"""Records the request bodies kubectl sends, for the protobuf decoder's fixtures.

A plain-HTTP server on 127.0.0.1 that saves every POST/PUT body as NAME.pb (NAME from
the CAPNAME environment variable of the server, else reqN) and answers 409 so kubectl
stops there; GETs (discovery) get 404. Python 3 standard library only.

    python3 capture.py 18999 OUTDIR &
    kubectl.1.33 --server=http://127.0.0.1:18999 --kubeconfig=/dev/null create namespace x
    kubectl.1.33 --kubeconfig=/dev/null create namespace x --dry-run=client -o json > x.json
"""
import http.server
import os
import sys

OUT = sys.argv[2]
COUNT = [0]


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(404, b'{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        COUNT[0] += 1
        name = os.environ.get("CAPNAME", f"req{COUNT[0]}")
        with open(os.path.join(OUT, name + ".pb"), "wb") as fh:
            fh.write(body)
        sys.stderr.write(f"{self.command} {self.path} {self.headers.get('Content-Type')} {len(body)} bytes -> {name}.pb\n")
        self.reply(409, b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"captured","reason":"Conflict","code":409}')

    do_PUT = do_POST


http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
