#!/usr/bin/env python3
"""Reads weightpress's GGUF exports with gguf-py (Python's `gguf` package, llama.cpp's own reader), outside npm test.

For each type it runs `weightpress export-gguf --json`, opens the file with gguf.GGUFReader, dequantizes every
tensor with gguf.quants.dequantize and checks: the type and shape gguf-py sees, the SSE against the checkpoint
equal to weightpress's report, and for the types gguf-py can also quantize (Q8_0, Q5_0, Q5_1) that its quantizer
(a NumPy port of llama.cpp's quantize_row_*_ref) writes the same bytes. It then times gguf-py's Q8_0 quantizer
against weightpress's on the largest tensor.

  python3 -m venv /work/benchenv-16c && /work/benchenv-16c/bin/pip install gguf numpy
  /work/benchenv-16c/bin/python bench/kquants_verify.py /work/shared/data/*.safetensors
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType as Q
from gguf import quants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "dist", "cli.js")
TYPES = ["Q4_K", "Q5_K", "Q6_K", "Q8_0", "Q5_0", "Q5_1", "IQ4_NL", "Q4_0"]


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, e in header.items():
            if name == "__metadata__":
                continue
            a, b = e["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            dt = e["dtype"]
            if dt == "BF16":
                v = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif dt in ("F16", "F32", "F64"):
                v = np.frombuffer(raw, dtype={"F16": np.float16, "F32": np.float32, "F64": np.float64}[dt]).astype(np.float64)
            else:
                continue
            out[name] = (v.astype(np.float64), e["shape"])
        return out


def main(paths):
    failures = 0
    for path in paths:
        src = read_safetensors(path)
        for t in TYPES:
            with tempfile.TemporaryDirectory() as d:
                out = os.path.join(d, "x.gguf")
                r = subprocess.run(["node", CLI, "export-gguf", path, "-o", out, "--type", t, "--no-compare", "--json"],
                                   capture_output=True, text=True, env={**os.environ, "WEIGHTPRESS_PREFER_LOCAL": "1"})
                if r.returncode != 0:
                    print(f"FAIL {path} {t}: {r.stderr.strip()}")
                    failures += 1
                    continue
                rep = json.loads(r.stdout)
                by_name = {x["ggufName"]: x for x in rep["tensors"]}
                reader = GGUFReader(out)
                checked = same_bytes = 0
                for tensor in reader.tensors:
                    x = by_name[tensor.name]
                    if tensor.tensor_type.name != x["type"]:
                        print(f"FAIL {tensor.name}: gguf-py reads {tensor.tensor_type.name}, report says {x['type']}")
                        failures += 1
                    if x["name"] not in src:
                        continue
                    orig, shape = src[x["name"]]
                    y = quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float64).reshape(-1)
                    sse = float(np.sum((y - orig) ** 2))
                    if abs(sse - x["sse"]) > 1e-6 * max(x["sse"], 1e-30) + 1e-12:
                        print(f"FAIL {tensor.name} ({x['type']}): gguf-py SSE {sse} != report {x['sse']}")
                        failures += 1
                    checked += 1
                    if tensor.tensor_type in (Q.Q8_0, Q.Q5_0, Q.Q5_1) and not x.get("importance"):
                        ref = quants.quantize(orig.astype(np.float32).reshape(-1, int(tensor.shape[0])), tensor.tensor_type)
                        if ref.tobytes() != np.asarray(tensor.data).tobytes():
                            print(f"FAIL {tensor.name} ({x['type']}): bytes differ from gguf-py's quantizer")
                            failures += 1
                        else:
                            same_bytes += 1
                print(f"{os.path.basename(path)} {t}: {checked} tensors read by gguf-py, SSE = report; "
                      f"{same_bytes} bit-identical to gguf-py's quantizer; SQNR {rep['total']['sqnrDb']:.2f} dB")
    # The reachable peer: gguf-py's NumPy Q8_0 quantizer on a 4096 x 4096 F32 matrix.
    rng = np.random.default_rng(1)
    m = (rng.standard_normal((4096, 4096)) * 0.02).astype(np.float32)
    t0 = time.perf_counter()
    quants.quantize(m, Q.Q8_0)
    dt = time.perf_counter() - t0
    print(f"gguf-py Q8_0 quantize, 4096 x 4096 F32 (64 MiB): {dt * 1e3:.0f} ms, {m.nbytes / 1e6 / dt:.1f} MB/s (load {os.getloadavg()[0]:.1f})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or [os.path.join(ROOT, "test", "fixtures", "emotion.f16.safetensors")]))
