/** safetensors dtypes as weightpress sees them. */
export const DTYPE_SIZE: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};
export type FloatDtype = 'F64' | 'F32' | 'F16' | 'BF16';
export const FLOAT_DTYPES: readonly FloatDtype[] = ['F64', 'F32', 'F16', 'BF16'];
export function isFloatDtype(d: string): d is FloatDtype {
  return (FLOAT_DTYPES as readonly string[]).includes(d);
}
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
