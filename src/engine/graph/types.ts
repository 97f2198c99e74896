// Core value types of the graph builder. A dimension is a number when it is fixed by the model
// (hidden size, vocabulary) and a name when it varies per call (batch, sequence length): one graph
// then serves every batch size and length, and autodiff can still tell a broadcast axis (a static 1)
// from a real one.
export type Dim = number | string;
export type Shape = readonly Dim[];

export type DType = 'float32' | 'float64' | 'int64' | 'bool';

/** ONNX TensorProto.DataType codes for the dtypes we use. */
export const ONNX_DTYPE: Record<DType, number> = { float32: 1, float64: 11, int64: 7, bool: 9 };

export type Attr =
  | { kind: 'int'; v: number }
  | { kind: 'float'; v: number }
  | { kind: 'ints'; v: number[] }
  | { kind: 'floats'; v: number[] }
  | { kind: 'string'; v: string }
  /** A small constant tensor (ConstantOfShape's fill value). */
  | { kind: 'tensor'; dtype: DType; v: number[] };

export const int = (v: number): Attr => ({ kind: 'int', v });
export const float = (v: number): Attr => ({ kind: 'float', v });
export const ints = (v: number[]): Attr => ({ kind: 'ints', v });
export const floats = (v: number[]): Attr => ({ kind: 'floats', v });
export const str = (v: string): Attr => ({ kind: 'string', v });

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64';
}

export function shapeToString(shape: Shape): string {
  return `[${shape.join(',')}]`;
}
