// Graph -> ONNX ModelProto bytes, through onnx-proto's generated protobuf classes.
import onnxProto from 'onnx-proto';
import type { Graph, Initializer, TensorData, Value } from './builder.ts';
import type { Attr, DType } from './types.ts';
import { ONNX_DTYPE } from './types.ts';
import { OPSET } from './ops.ts';

const { onnx } = onnxProto;
const A = onnx.AttributeProto.AttributeType;

function valueInfo(v: Value): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name: v.name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE[v.dtype],
        shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });
}

function rawBytes(data: TensorData): Uint8Array {
  // onnx stores raw_data little-endian; typed arrays on x86/arm Node are little-endian too.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function tensorProto(name: string, dtype: DType, dims: readonly number[], data: TensorData) {
  return onnx.TensorProto.create({ name, dataType: ONNX_DTYPE[dtype], dims: [...dims], rawData: rawBytes(data) });
}

export interface ExternalLocation {
  location: string;
  offset: number;
  length: number;
}

function externalTensorProto(name: string, dtype: DType, dims: readonly number[], ext: ExternalLocation) {
  return onnx.TensorProto.create({
    name,
    dataType: ONNX_DTYPE[dtype],
    dims: [...dims],
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: ext.location },
      { key: 'offset', value: String(ext.offset) },
      { key: 'length', value: String(ext.length) },
    ],
  });
}

function initializerProto(i: Initializer, placed?: ExternalLocation) {
  const ext = i.external ?? placed;
  const dims = i.value.shape as number[];
  return ext ? externalTensorProto(i.value.name, i.value.dtype, dims, ext) : tensorProto(i.value.name, i.value.dtype, dims, i.data);
}

function typedFor(dtype: DType, values: number[]): TensorData {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    case 'int64':
      return BigInt64Array.from(values.map(BigInt));
    case 'bool':
      return Uint8Array.from(values);
  }
}

function attribute(name: string, a: Attr) {
  switch (a.kind) {
    case 'int':
      return onnx.AttributeProto.create({ name, type: A.INT, i: a.v });
    case 'float':
      return onnx.AttributeProto.create({ name, type: A.FLOAT, f: a.v });
    case 'ints':
      return onnx.AttributeProto.create({ name, type: A.INTS, ints: a.v });
    case 'floats':
      return onnx.AttributeProto.create({ name, type: A.FLOATS, floats: a.v });
    case 'string':
      return onnx.AttributeProto.create({ name, type: A.STRING, s: new TextEncoder().encode(a.v) });
    case 'tensor':
      return onnx.AttributeProto.create({
        name,
        type: A.TENSOR,
        t: tensorProto('', a.dtype, [a.v.length], typedFor(a.dtype, a.v)),
      });
  }
}

/** `placed`: where initializers held in memory were written as external data (by name). */
export function toModelProto(g: Graph, docString = '', placed?: ReadonlyMap<string, ExternalLocation>) {
  const graph = onnx.GraphProto.create({
    name: g.name,
    input: g.inputs.map(valueInfo),
    output: g.outputs.map(valueInfo),
    initializer: g.initializers.map((i) => initializerProto(i, placed?.get(i.value.name))),
    node: g.nodes.map((n, idx) =>
      onnx.NodeProto.create({
        name: `${n.op}_${idx}`,
        opType: n.op,
        domain: n.domain ?? '',
        input: n.inputs.map((i) => (i ? i.name : '')),
        output: n.outputs.map((o) => o.name),
        attribute: Object.entries(n.attrs).map(([k, a]) => attribute(k, a)),
      }),
    ),
  });
  return onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'clinvqa',
    producerVersion: '0.1.0',
    docString,
    opsetImport: [{ domain: '', version: OPSET }],
    graph,
  });
}

export function serializeGraph(g: Graph, docString = ''): Uint8Array {
  return onnx.ModelProto.encode(toModelProto(g, docString)).finish();
}

/** Bytes of the initializers a serialised model would hold inline (not already external). */
export function inlineInitializerBytes(g: Graph): number {
  return g.initializers.reduce((n, i) => n + (i.external ? 0 : i.data.byteLength), 0);
}
