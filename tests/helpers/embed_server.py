"""The reference embedding service for tests: all-MiniLM-L6-v2 over HTTP.

`POST /embed {"texts": [...]}` -> `{"embeddings": [[384 floats], ...]}`, same order, after the
reference service's normalization (13+-digit numbers -> <TS>, IPv4 -> <IP>, 0x.. -> <HEX>,
digits -> <NUM>, lowercase). The model is the real one: a numpy BERT forward over the shipped
safetensors, tokenized by HF `tokenizers`, mean pooling over the attention mask, L2 norm
(sentence-transformers' recipe).

Fault injection for the failure tests (the model itself is never faked):
`POST /control {"fail": N, "stall": N, "wrong_size": N, "wrong_count": N, "stall_seconds": S}`
makes the next N requests answer 503 / hang for S seconds / return 383-d vectors / drop a
vector. `GET /stats` returns how many texts were embedded and requests served.

Usage: embed_server.py MODEL_DIR [--port 0]   (prints `listening on PORT` once ready)
"""

import argparse
import json
import math
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

RULES = [
    (re.compile(r"\b\d{13,}\b"), "<TS>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "<IP>"),
    (re.compile(r"0x[0-9a-fA-F]+"), "<HEX>"),
    (re.compile(r"\d+"), "<NUM>"),
]


def normalize(text):
    for pattern, replacement in RULES:
        text = pattern.sub(replacement, text)
    return text.lower()


class MiniLM:
    """BERT encoder (6 layers, 12 heads, 384 hidden) in numpy, float32."""

    def __init__(self, model_dir):
        config = json.load(open(f"{model_dir}/config.json"))
        self.heads = config["num_attention_heads"]
        self.eps = config["layer_norm_eps"]
        self.layers = config["num_hidden_layers"]
        self.w = load_file(f"{model_dir}/model.safetensors")
        self.tokenizer = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
        self.tokenizer.enable_truncation(max_length=256)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def layer_norm(self, x, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def linear(self, x, name):
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def embed(self, texts):
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings])
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        batch, length = ids.shape
        x = (
            self.w["embeddings.word_embeddings.weight"][ids]
            + self.w["embeddings.position_embeddings.weight"][np.arange(length)][None]
            + self.w["embeddings.token_type_embeddings.weight"][0][None, None]
        )
        x = self.layer_norm(x, "embeddings.LayerNorm")
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        d = x.shape[-1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t):
                return t.reshape(batch, length, self.heads, d).transpose(0, 2, 1, 3)

            q = split(self.linear(x, f"{p}.attention.self.query"))
            k = split(self.linear(x, f"{p}.attention.self.key"))
            v = split(self.linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, -1)
            x = self.layer_norm(self.linear(context, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            h = self.linear(x, f"{p}.intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
            x = self.layer_norm(self.linear(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def erf(x):
    """erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7, below float32 noise)."""
    sign = np.sign(x)
    a = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.faults = {"fail": 0, "stall": 0, "wrong_size": 0, "wrong_count": 0}
        self.stall_seconds = 5.0
        self.texts = 0
        self.requests = 0

    def take_fault(self):
        with self.lock:
            for kind in ("fail", "stall", "wrong_size", "wrong_count"):
                if self.faults[kind] > 0:
                    self.faults[kind] -= 1
                    return kind
        return None


def make_handler(model, state):
    model_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def read_json(self):
            n = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(n) or b"{}")

        def do_GET(self):
            if self.path == "/health":
                self.reply(200, {"status": "ok"})
            elif self.path == "/stats":
                self.reply(200, {"texts": state.texts, "requests": state.requests})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            if self.path == "/control":
                body = self.read_json()
                with state.lock:
                    for kind in state.faults:
                        state.faults[kind] = int(body.get(kind, state.faults[kind]))
                    state.stall_seconds = float(body.get("stall_seconds", state.stall_seconds))
                self.reply(200, {"faults": state.faults})
                return
            if self.path != "/embed":
                self.reply(404, {"error": "not found"})
                return
            texts = self.read_json().get("texts")
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                self.reply(400, {"error": "texts must be a list of strings"})
                return
            fault = state.take_fault()
            if fault == "fail":
                self.reply(503, {"error": "injected failure"})
                return
            if fault == "stall":
                time.sleep(state.stall_seconds)
            with model_lock:
                vectors = model.embed([normalize(t) for t in texts]).tolist()
            if fault == "wrong_size":
                vectors = [v[:-1] for v in vectors]
            if fault == "wrong_count":
                vectors = vectors[:-1]
            if fault is None:
                with state.lock:
                    state.texts += len(texts)
                    state.requests += 1
            self.reply(200, {"embeddings": vectors})

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    model = MiniLM(args.model_dir)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(model, State()))
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
