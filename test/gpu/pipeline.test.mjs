// GPU tests: run with Node's own runner against dist/ on a machine with an NVIDIA GPU (no node_modules needed):
//   node --test test/gpu/   (or: npm run test:gpu)
// Without a GPU every test skips with the reason. The CUDA result must equal the CPU result byte for byte:
// both use the same exact histogram, the same CPU solve and the same lookup+pack kernel code.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

process.env.WEIGHTPRESS_PREFER_LOCAL = '1';
const { backends, quantize } = await import('../../dist/index.js');
const cuda = backends().find((b) => b.name === 'cuda');
const skip = cuda?.available ? false : `no CUDA device: ${cuda?.reason ?? 'not compiled'}`;

const dir = mkdtempSync(join(tmpdir(), 'wp-gpu-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A BF16 checkpoint written by this test (not by the library): Gaussian-ish tensors, one over 2^26 elements. */
function writeCheckpoint(path) {
  const shapes = { 'big.weight': [8448, 8192], 'mid.weight': [1024, 1024], 'odd.weight': [513, 1032] };
  const r = rng(5);
  const header = {};
  const parts = [];
  let off = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape[0] * shape[1];
    const u = new Uint16Array(n);
    const f = new Float32Array(1);
    const b = new Uint32Array(f.buffer);
    for (let i = 0; i < n; i++) {
      f[0] = (r() + r() + r() - 1.5) * 0.05;
      u[i] = b[0] >>> 16;
    }
    header[name] = { dtype: 'BF16', shape, data_offsets: [off, off + n * 2] };
    parts.push(Buffer.from(u.buffer));
    off += n * 2;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, Buffer.from(json), ...parts]));
}

test('CUDA equals CPU byte for byte (tensor and group granularity, 2-8 bits)', { skip }, async () => {
  const input = join(dir, 'in.safetensors');
  writeCheckpoint(input);
  for (const [granularity, bits] of [['tensor', 4], ['tensor', 3], ['group', 8], ['tensor', 2]]) {
    const o = { method: 'kmeans-optimal', bits, granularity, groupSize: 1 << 20 };
    const a = join(dir, `cpu-${granularity}-${bits}.safetensors`);
    const b = join(dir, `cuda-${granularity}-${bits}.safetensors`);
    const ra = await quantize(input, a, { ...o, device: 'cpu' });
    const rb = await quantize(input, b, { ...o, device: 'cuda' });
    assert.ok(rb.tensors.some((t) => t.device === 'cuda'), 'the CUDA path ran');
    assert.ok(readFileSync(a).equals(readFileSync(b)), `${granularity} ${bits} bits: files differ`);
    assert.equal(ra.total.sqnrDb, rb.total.sqnrDb);
  }
});

test('device auto never fails', async () => {
  const input = join(dir, 'auto.safetensors');
  writeCheckpoint(input);
  const r = await quantize(input, join(dir, 'auto.out'), { method: 'uniform', bits: 4, granularity: 'tensor', device: 'auto' });
  assert.ok(r.total.quantizedTensors > 0);
});
