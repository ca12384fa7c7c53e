// A small builder for ONNX graphs: nodes, inputs, outputs, initializers (inline or external data) and If subgraphs.
// Value names are unique across a whole model (subgraphs included), as ONNX requires, through one shared counter.
import onnxProto from 'onnx-proto';
import type { TensorEntry } from '../../../model/safetensors.js';

const { onnx } = onnxProto;
type NodeProto = onnxProto.onnx.INodeProto;
type TensorProto = onnxProto.onnx.ITensorProto;
type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
type AttributeProto = onnxProto.onnx.IAttributeProto;
export type ModelProto = onnxProto.onnx.ModelProto;

export const OPSET = 18;
const CONTRIB_DOMAIN = 'com.microsoft';
export type DataType = 'float' | 'int32' | 'int64' | 'bool' | 'bfloat16' | 'float16' | 'uint8';
const DATA_TYPE: Record<DataType, number> = {
  float: onnx.TensorProto.DataType.FLOAT,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
  bfloat16: onnx.TensorProto.DataType.BFLOAT16,
  float16: onnx.TensorProto.DataType.FLOAT16,
  uint8: onnx.TensorProto.DataType.UINT8,
};

const STORED_TYPE = { F32: 'float', BF16: 'bfloat16', F16: 'float16', U8: 'uint8' } as const satisfies Record<
  string,
  DataType
>;

export interface GraphOptions {
  /** 16-bit frozen weights stay 16-bit in the session and are widened at each run (training); see frozenWeight. */
  keep16bit: boolean;
}

/** A symbolic dimension (string), a fixed one (number); `null` as the whole shape means unknown rank. */
export type Dims = (number | string)[] | null;
export type AttributeValue = number | number[] | string | { float: number } | GraphBuilder;

class NameCounter {
  private next = 0;
  fresh(hint: string): string {
    return `${hint}_${this.next++}`;
  }
}

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly inputs: ValueInfoProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly names: NameCounter;
  private flatShapeInput: string | null = null;

  constructor(
    readonly name: string,
    readonly options: GraphOptions = { keep16bit: false },
    names?: NameCounter,
    private readonly root: GraphBuilder | null = null,
  ) {
    this.names = names ?? new NameCounter();
  }

  /** A subgraph (an If branch) whose values are named from the same counter. */
  subgraph(name: string): GraphBuilder {
    return new GraphBuilder(name, this.options, this.names, this.root ?? this);
  }

  fresh(hint: string): string {
    return this.names.fresh(hint);
  }

  input(name: string, type: DataType, dims: Dims): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Declares `value` a graph output under `name` (through an Identity, so outer-scope values can be outputs too). */
  output(value: string, name: string, type: DataType = 'float', dims: Dims = null): void {
    this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: `out_${name}` });
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** Emits one node and returns its output names. */
  node(
    opType: string,
    inputs: string[],
    attributes: Record<string, AttributeValue> = {},
    outputCount = 1,
    hint = opType.toLowerCase(),
  ): string[] {
    const outputs = Array.from({ length: outputCount }, () => this.fresh(hint));
    this.nodes.push({
      opType,
      input: inputs,
      output: outputs,
      name: this.fresh(`n_${hint}`),
      attribute: Object.entries(attributes).map(([key, value]) => attribute(key, value)),
    });
    return outputs;
  }

  /** Emits one single-output node. */
  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, hint?: string): string {
    return this.node(opType, inputs, attributes, 1, hint)[0];
  }

  /**
   * Emits one node of ONNX Runtime's own operators (domain com.microsoft), which other runtimes lack: only where a
   * standard-op graph would cost what that operator saves (MatMulNBits when generating).
   */
  contribOp(opType: string, inputs: string[], attributes: Record<string, AttributeValue>, hint?: string): string {
    return this.contribNode(opType, inputs, attributes, 1, hint)[0];
  }

  /** A com.microsoft node with `outputCount` outputs (see contribOp). */
  contribNode(
    opType: string,
    inputs: string[],
    attributes: Record<string, AttributeValue>,
    outputCount: number,
    hint?: string,
  ): string[] {
    const outputs = this.node(opType, inputs, attributes, outputCount, hint);
    this.nodes[this.nodes.length - 1].domain = CONTRIB_DOMAIN;
    return outputs;
  }

  /**
   * Declares `value`, an output of a node of this graph that no other node reads, a graph output under `name` with no
   * Identity in between: a run can then have ONNX Runtime write it straight into a buffer the caller passed, the same
   * one it feeds as an input (a KV cache that past and present share).
   */
  outputInPlace(value: string, name: string, type: DataType, dims: Dims): void {
    if (this.nodes.some((n) => n.input?.includes(value))) throw new Error(`${value} is read inside the graph`);
    const node = this.nodes.find((n) => n.output?.includes(value));
    if (!node) throw new Error(`no node of ${this.name} computes ${value}`);
    node.output = node.output!.map((o) => (o === value ? name : o));
    this.outputs.push(valueInfo(name, type, dims));
  }

  add(a: string, b: string, hint?: string): string {
    return this.op('Add', [a, b], {}, hint);
  }
  sub(a: string, b: string, hint?: string): string {
    return this.op('Sub', [a, b], {}, hint);
  }
  mul(a: string, b: string, hint?: string): string {
    return this.op('Mul', [a, b], {}, hint);
  }
  matmul(a: string, b: string, hint?: string): string {
    return this.op('MatMul', [a, b], {}, hint);
  }

  /** alpha * op(a) @ op(b) (+ c): 2-D only; transB reads a stored [out, in] weight without a transposed copy. */
  gemm(
    a: string,
    b: string,
    options: { transA?: boolean; transB?: boolean; alpha?: number; bias?: string } = {},
    hint?: string,
  ): string {
    const attributes: Record<string, AttributeValue> = {};
    if (options.transA) attributes.transA = 1;
    if (options.transB) attributes.transB = 1;
    if (options.alpha !== undefined && options.alpha !== 1) attributes.alpha = { float: options.alpha };
    return this.op('Gemm', options.bias ? [a, b, options.bias] : [a, b], attributes, hint);
  }

  cast(x: string, to: DataType, hint = 'cast'): string {
    return this.op('Cast', [x], { to: DATA_TYPE[to] }, hint);
  }

  reshape(x: string, shape: string | number[], hint?: string): string {
    return this.op('Reshape', [x, typeof shape === 'string' ? shape : this.constantInt64(shape)], {}, hint);
  }

  transpose(x: string, perm: number[], hint?: string): string {
    return this.op('Transpose', [x], { perm }, hint);
  }

  reduceSum(x: string, axes: number[], keepdims = true, hint?: string): string {
    return this.op('ReduceSum', [x, this.constantInt64(axes)], { keepdims: keepdims ? 1 : 0 }, hint);
  }

  reduceMean(x: string, axes: number[], hint?: string): string {
    return this.op('ReduceMean', [x, this.constantInt64(axes)], { keepdims: 1 }, hint);
  }

  reduceMax(x: string, axes: number[], hint?: string): string {
    return this.op('ReduceMax', [x, this.constantInt64(axes)], { keepdims: 1 }, hint);
  }

  scalar(value: number, hint = 'scalar'): string {
    return this.constantFloat([value], [], hint);
  }

  constantFloat(values: number[], dims: number[], hint = 'const'): string {
    return this.constantTensor({ dataType: DATA_TYPE.float, dims, floatData: values }, hint);
  }

  constantInt64(values: number[], dims: number[] = [values.length], hint = 'shape'): string {
    return this.constantTensor({ dataType: DATA_TYPE.int64, dims, int64Data: values }, hint);
  }

  private constantTensor(tensor: TensorProto, hint: string): string {
    const name = this.fresh(hint);
    this.nodes.push({
      opType: 'Constant',
      input: [],
      output: [name],
      name: this.fresh(`n_${hint}`),
      attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: tensor }],
    });
    return name;
  }

  /**
   * A frozen weight whose bytes stay in the `.safetensors` file (`location` is relative to the .onnx file), in the
   * checkpoint's own dtype. On the CPU, ORT maps the file: a page is resident once a run reads it.
   */
  externalInitializer(entry: TensorEntry, location: string): string {
    const dataType = STORED_TYPE[entry.dtype as keyof typeof STORED_TYPE];
    this.initializers.push({
      name: entry.name,
      dataType: DATA_TYPE[dataType],
      dims: entry.shape,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: location },
        { key: 'offset', value: String(entry.byteOffset) },
        { key: 'length', value: String(entry.byteLength) },
      ],
    });
    return entry.name;
  }

  /**
   * A frozen weight as fp32. A 16-bit one stays 16-bit in the session when the builder keeps 16 bits: it is widened
   * by a Cast at each run, behind a Reshape by the `flat_shape` input that keeps ORT from folding it into an fp32
   * copy at load. Otherwise ORT folds the Cast once (the generation graph: a Cast per token would cost its speed).
   */
  frozenWeight(entry: TensorEntry, location: string): string {
    const stored = this.externalInitializer(entry, location);
    return STORED_TYPE[entry.dtype as keyof typeof STORED_TYPE] === 'float' ? stored : this.widen(stored, entry.shape);
  }

  /**
   * A 16-bit weight as fp32; see frozenWeight. `again` (a second copy in the same graph) goes through a Slice that
   * names its step, so that ORT's common-subexpression elimination keeps it a separate node (see dequantize4bit.ts).
   */
  widen(value: string, dims: number[], again = false, hint = 'widen'): string {
    if (!this.options.keep16bit) return this.cast(value, 'float', hint);
    let flat = this.reshape(value, this.flatShape());
    if (again) {
      const n = dims.reduce((a, b) => a * b, 1);
      const [zero, end, one] = [this.constantInt64([0]), this.constantInt64([n]), this.constantInt64([1])];
      flat = this.op('Slice', [flat, zero, end, zero, one], {}, 'again');
    }
    return this.reshape(this.cast(flat, 'float', hint), dims, hint);
  }

  /** The `flat_shape` input (int64 [1], fed -1): a reshape target ORT cannot see at load; declared once, at root. */
  flatShape(): string {
    if (this.root) return this.root.flatShape();
    if (!this.flatShapeInput) this.flatShapeInput = this.input('flat_shape', 'int64', [1]);
    return this.flatShapeInput;
  }

  toGraphProto(): onnxProto.onnx.IGraphProto {
    const live = liveNodes(
      this.nodes,
      this.outputs.map((o) => o.name!),
    );
    return { name: this.name, node: live, input: this.inputs, output: this.outputs, initializer: this.initializers };
  }

  /** This graph as a model: read as is by the memory plan, encoded for ONNX Runtime. */
  toModel(): ModelProto {
    const graph = this.toGraphProto();
    const contrib = usesDomain(graph, CONTRIB_DOMAIN);
    return onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'peft-studio',
      opsetImport: [{ domain: '', version: OPSET }, ...(contrib ? [{ domain: CONTRIB_DOMAIN, version: 1 }] : [])],
      graph,
    });
  }
}

/** A model's bytes, as ONNX Runtime loads them. */
export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Every value a node reads, those its subgraphs read from the enclosing scope included. */
function namesRead(node: NodeProto, into: Set<string>): void {
  for (const input of node.input ?? []) if (input) into.add(input);
  for (const attr of node.attribute ?? []) for (const inner of attr.g?.node ?? []) namesRead(inner, into);
}

/**
 * Drops nodes whose results nothing reads. ONNX Runtime would run them anyway; the recompute branch of a checkpointed
 * layer, for one, needs the forward's saved values but not its output projection.
 */
function liveNodes(nodes: NodeProto[], outputs: string[]): NodeProto[] {
  const needed = new Set(outputs);
  const kept: NodeProto[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (!(node.output ?? []).some((o) => needed.has(o))) continue;
    kept.push(node);
    namesRead(node, needed);
  }
  return kept.reverse();
}

function valueInfo(name: string, type: DataType, dims: Dims): ValueInfoProto {
  const tensorType: onnxProto.onnx.TypeProto.ITensor = { elemType: DATA_TYPE[type] };
  if (dims) tensorType.shape = { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType } };
}

function usesDomain(graph: onnxProto.onnx.IGraphProto, domain: string): boolean {
  return (graph.node ?? []).some(
    (node) => node.domain === domain || (node.attribute ?? []).some((a) => a.g && usesDomain(a.g, domain)),
  );
}

function attribute(name: string, value: AttributeValue): AttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (value instanceof GraphBuilder) return { name, type: T.GRAPH, g: value.toGraphProto() };
  if (typeof value === 'number') return { name, type: T.INT, i: value };
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  return { name, type: T.FLOAT, f: value.float };
}
