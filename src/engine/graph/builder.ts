// The graph under construction: values, nodes, inputs, outputs and initializers, in the order
// they were made (which is a topological order, since a node can only use values that exist).
// Serialization to ONNX lives in serialize.ts; op constructors with shape rules in ops.ts.
import type { Attr, DType, Dim, Shape } from './types.ts';
import { shapeToString } from './types.ts';

export type TensorData = Float32Array | Float64Array | BigInt64Array | Uint8Array;

export class Value {
  constructor(
    readonly graph: Graph,
    /** Settable only through Graph.output, which renames a node's result instead of copying it. */
    public name: string,
    readonly dtype: DType,
    readonly shape: Shape,
    /** Small int64 constants (axes, shapes) keep their numbers here so rules can read them. */
    readonly constInts?: readonly number[],
  ) {}
  get rank(): number {
    return this.shape.length;
  }
  toString(): string {
    return `${this.name}:${this.dtype}${shapeToString(this.shape)}`;
  }
}

export interface Node {
  readonly op: string;
  readonly inputs: readonly (Value | null)[];
  readonly outputs: readonly Value[];
  readonly attrs: Readonly<Record<string, Attr>>;
  readonly domain?: string;
}

export interface Initializer {
  readonly value: Value;
  /** Empty when `external` is set. */
  readonly data: TensorData;
  /** Bytes already written to an ONNX external-data file (weights too large to hold in the proto). */
  readonly external?: { readonly location: string; readonly offset: number; readonly length: number };
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers: Initializer[] = [];
  private readonly names = new Set<string>();
  private counter = 0;
  /** Memo of scalar/small constants so repeated `0.5`s share one initializer. */
  private readonly constCache = new Map<string, Value>();

  constructor(
    readonly name: string,
    /** The dtype of every float tensor in this graph (float64 is used for gradient checks). */
    readonly floatType: 'float32' | 'float64' = 'float32',
  ) {}

  /** A name not used so far (the counter only grows); `hint` keeps dumps of the graph readable. */
  fresh(hint: string): string {
    let name = `${hint}_${this.counter++}`;
    while (this.names.has(name)) name = `${hint}_${this.counter++}`;
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`graph ${this.name}: duplicate value name ${name}`);
    this.names.add(name);
    return name;
  }

  input(name: string, dtype: DType, shape: Shape): Value {
    const v = new Value(this, this.claim(name), dtype, shape);
    this.inputs.push(v);
    return v;
  }

  initializer(name: string, dtype: DType, shape: readonly number[], data: TensorData, constInts?: number[]): Value {
    const count = shape.reduce((a, b) => a * b, 1);
    if (data.length !== count) throw new Error(`initializer ${name}: ${data.length} values for shape [${shape.join(',')}]`);
    const v = new Value(this, this.claim(name), dtype, shape, constInts);
    this.initializers.push({ value: v, data });
    return v;
  }

  /** An initializer whose bytes lie in an external-data file next to the model (`location` is relative to it). */
  externalInitializer(name: string, dtype: DType, shape: readonly number[], external: { location: string; offset: number; length: number }): Value {
    const bytes = shape.reduce((a, b) => a * b, 1) * (dtype === 'float64' || dtype === 'int64' ? 8 : dtype === 'bool' ? 1 : 4);
    if (external.length !== bytes) throw new Error(`initializer ${name}: ${external.length} external bytes for ${dtype} [${shape.join(',')}]`);
    const v = new Value(this, this.claim(name), dtype, shape);
    this.initializers.push({ value: v, data: new Float32Array(0), external: { ...external } });
    return v;
  }

  /** A float constant in the graph's float type; `value` may be a scalar or a flat array with `shape`. */
  constFloat(value: number | readonly number[], shape: readonly number[] = []): Value {
    const values = typeof value === 'number' ? [value] : [...value];
    const key = `f:${shape.join(',')}:${values.join(',')}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    const data = this.floatType === 'float64' ? Float64Array.from(values) : Float32Array.from(values);
    const v = this.initializer(this.fresh('const'), this.floatType, shape, data);
    this.constCache.set(key, v);
    return v;
  }

  /** An int64 constant (axes, shapes, indices): a 1-D tensor unless `scalar`. */
  constInts(values: readonly number[], scalar = false): Value {
    const key = `i:${scalar}:${values.join(',')}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    const shape = scalar ? [] : [values.length];
    const data = BigInt64Array.from(values.map((x) => BigInt(x)));
    const v = this.initializer(this.fresh('ints'), 'int64', shape, data, [...values]);
    this.constCache.set(key, v);
    return v;
  }

  /** Adds a node whose output types the caller has inferred (see ops.ts). */
  node(
    op: string,
    inputs: readonly (Value | null)[],
    outputs: readonly { dtype: DType; shape: Shape; name?: string }[],
    attrs: Record<string, Attr> = {},
    domain?: string,
  ): Value[] {
    for (const i of inputs) {
      if (i && i.graph !== this) throw new Error(`${op}: input ${i.name} belongs to another graph`);
    }
    const outs = outputs.map((o) => new Value(this, this.claim(o.name ?? this.fresh(op.toLowerCase())), o.dtype, o.shape));
    this.nodes.push({ op, inputs, outputs: outs, attrs, domain });
    return outs;
  }

  /**
   * Marks a value as a graph output, under `name`. A node's result is renamed in place; only graph
   * inputs, initializers and values already output under another name get an Identity copy. (ORT
   * keeps Identity nodes that feed graph outputs, and copying a KV cache each decode step costs.)
   */
  output(v: Value, name?: string): Value {
    let out = v;
    if (name && name !== v.name) {
      const producedHere = this.nodes.some((n) => n.outputs.includes(v));
      if (producedHere && !this.outputs.includes(v)) {
        this.claim(name);
        this.names.delete(v.name);
        v.name = name;
      } else {
        [out] = this.node('Identity', [v], [{ dtype: v.dtype, shape: v.shape, name }]);
      }
    }
    this.outputs.push(out);
    return out;
  }
}

export function dimsEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function staticSize(shape: Shape): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return undefined;
    n *= d;
  }
  return n;
}

export type { Dim };
