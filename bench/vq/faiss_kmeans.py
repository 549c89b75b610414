"""faiss-cpu k-means on the same data as bench/vq.bench.ts, at equal iterations (the peer a user would pick).

Usage: python bench/vq/faiss_kmeans.py DATA.f32 N D K ITER THREADS SEED
Prints one JSON line: {"seconds", "sse", "niter"}. faiss samples at most max_points_per_centroid * K points for
training by default; here every point is used (as weightpress does), and the SSE is of every point's nearest
centroid after training.
"""
import json, sys, time

import faiss
import numpy as np

path, n, d, k, niter, threads, seed = sys.argv[1], *map(int, sys.argv[2:])
x = np.fromfile(path, dtype=np.float32).reshape(n, d)
faiss.omp_set_num_threads(threads)
km = faiss.Kmeans(d, k, niter=niter, seed=seed, max_points_per_centroid=n, verbose=False)
t0 = time.perf_counter()
km.train(x)
dist, _ = km.index.search(x, 1)
t1 = time.perf_counter()
print(json.dumps({"seconds": t1 - t0, "sse": float(dist.astype(np.float64).sum()), "niter": niter}))
