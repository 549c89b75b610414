/** Float decoding for bench scripts (F32/F16/BF16 bytes to Float64Array). */
export function decodeFloat(bytes: Uint8Array, dtype: string): Float64Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = dtype === 'F32' ? 4 : 2;
  const n = bytes.byteLength / size;
  const out = new Float64Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    if (dtype === 'F32') out[i] = dv.getFloat32(i * 4, true);
    else if (dtype === 'BF16') { u[0] = dv.getUint16(i * 2, true) << 16; out[i] = f[0]; }
    else {
      const h = dv.getUint16(i * 2, true);
      const e = (h >> 10) & 31, m = h & 1023, s = h & 0x8000 ? -1 : 1;
      out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return out;
}
