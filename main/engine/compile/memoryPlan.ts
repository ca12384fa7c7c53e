// The memory plan: the peak resident memory of a training run, predicted before any weight is read, from the very
// graphs the engine compiles (built here on placeholder weight entries and walked node by node in ORT's order).
// Legend: B = batch, T = sequence (virtual tokens included), N = B * T tokens, C = hidden, V = vocabulary, L = layers.
//
// What is resident at the peak of a CPU step (see trainableModel.ts for the step itself):
//   weights          every frozen weight as stored, mapped from the checkpoint file by ORT (a page is resident once a
//                    step reads it): fp32, 16-bit (widened during each call), or 4-bit codes and their absmax;
//                    an untied embedding stays on disk (the host reads the rows it needs)
//   checkpoints      what the host keeps between layer calls: the L + 1 hidden states [N, C], the gradient flowing
//                    back [N, C], and without checkpointing every layer's saved activations
//   layerWorkingSet  the largest layer call: the values alive inside its If branch at its worst node, plus the host
//                    copies of its outputs (onnxruntime-node copies outputs into JavaScript buffers); with a 4-bit
//                    or 16-bit base, also the layer's weights dequantized or widened to fp32 before the If, alive
//                    until it ends
//   logits           the loss head over a chunk of rows: shifted logits, probabilities and their gradient, [rows, V],
//                    and one vocabulary chunk of a 16-bit or 4-bit lm_head as fp32
//   optimizerState   trainable parameters, their gradients and the optimizer's moments (fp32)
//   runtime          Node + ONNX Runtime, one session per graph, and memory the allocators keep after it is freed
// The phases peak at different moments, so `parts` hold each part's bytes at the moment of the peak and add up to it.
import onnxProto from 'onnx-proto';
import type {
  AdapterMethod,
  ExecutionDevice,
  MemoryParts,
  OptimizerName,
  QuantizeChoice,
} from '../../../shared/training.js';
import {
  checkedTargets,
  expectedShapes,
  layerWeightNames,
  targetShape,
  type ModelSpec,
} from '../../model/architecture.js';
import { quantizableWeightNames, type Quantized4bitWeight } from '../../model/quant/bnb4bit.js';
import { INT4_BLOCK_SIZE } from '../../model/quant/int4.js';
import type { TensorEntry } from '../../model/safetensors.js';
import { buildTrainingLayerGraph } from './graphs/trainingLayer.js';
import { buildHeadGraph, HEAD_CHUNK_ROWS } from './graphs/head.js';

const { onnx } = onnxProto;
type GraphProto = onnxProto.onnx.IGraphProto;
type NodeProto = onnxProto.onnx.INodeProto;

export interface MemoryPlanInput {
  spec: ModelSpec;
  /** Bytes per stored weight element in the checkpoint (4 for f32, 2 for bf16/f16). */
  weightBytesPerElement: number;
  /**
   * The base as the engine runs it: nf4/fp4/int4 for 4-bit layer projections (a checkpoint quantized on load, or a
   * bitsandbytes 4-bit one; double quantization, blocks of 64), none for the checkpoint's own precision.
   */
  quantize: QuantizeChoice;
  method: AdapterMethod;
  lora: { rank: number; targets: string[] };
  /** Prompt tuning only. */
  numVirtualTokens: number;
  /** Micro-batch rows. */
  batchSize: number;
  /** Max sequence length. */
  seqLen: number;
  gradientCheckpointing: boolean;
  optimizer: OptimizerName;
  device: ExecutionDevice;
}

export interface MemoryPlan {
  /** The predicted peak. */
  totalBytes: number;
  parts: MemoryParts;
}

// ---------------------------------------------------------------------------------------------------------------
// Shapes of every value of a compiled graph, for concrete B and T.

interface Value {
  dims: number[];
  bytesPerElement: number;
  /** Contents of small int64 tensors (shapes, axes), which later Reshape/Expand/Slice nodes read. */
  ints?: number[];
}

const ELEMENT_BYTES: Record<number, number> = {
  [onnx.TensorProto.DataType.FLOAT]: 4,
  [onnx.TensorProto.DataType.INT64]: 8,
  [onnx.TensorProto.DataType.INT32]: 4,
  [onnx.TensorProto.DataType.BOOL]: 1,
  [onnx.TensorProto.DataType.BFLOAT16]: 2,
  [onnx.TensorProto.DataType.FLOAT16]: 2,
  [onnx.TensorProto.DataType.UINT8]: 1,
};

const bytesOf = (v: Value) => v.dims.reduce((a, b) => a * b, 1) * v.bytesPerElement;
const count = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

function attr(node: NodeProto, name: string): onnxProto.onnx.IAttributeProto | undefined {
  return (node.attribute ?? []).find((a) => a.name === name);
}

function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = attr(node, name);
  return a?.i == null ? fallback : Number(a.i);
}

function broadcast(a: number[], b: number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const pa = [...Array(rank - a.length).fill(1), ...a];
  const pb = [...Array(rank - b.length).fill(1), ...b];
  return pa.map((d, i) => (d === 1 ? pb[i] : d));
}

function axisOf(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** The output values of one node from its input values (shape inference for the ops the engine emits). */
function inferNode(node: NodeProto, input: (i: number) => Value): Value[] {
  const op = node.opType!;
  const float = (dims: number[]): Value => ({ dims, bytesPerElement: 4 });
  switch (op) {
    case 'Constant': {
      const t = attr(node, 'value')!.t!;
      const dims = (t.dims ?? []).map(Number);
      return [{ dims, bytesPerElement: ELEMENT_BYTES[t.dataType!], ints: t.int64Data?.map(Number) }];
    }
    case 'Identity':
    case 'Softmax':
    case 'Sigmoid':
    case 'Exp':
    case 'Log':
    case 'Sqrt':
    case 'Reciprocal':
      return [input(0)];
    case 'Cast':
      return [{ dims: input(0).dims, bytesPerElement: ELEMENT_BYTES[intAttr(node, 'to', 1)] }];
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
      return [{ dims: broadcast(input(0).dims, input(1).dims), bytesPerElement: input(0).bytesPerElement }];
    case 'MatMul': {
      const [a, b] = [input(0).dims, input(1).dims];
      return [float([...broadcast(a.slice(0, -2), b.slice(0, -2)), a[a.length - 2], b[b.length - 1]])];
    }
    case 'Gemm': {
      const [a, b] = [input(0).dims, input(1).dims];
      return [float([intAttr(node, 'transA', 0) ? a[1] : a[0], intAttr(node, 'transB', 0) ? b[0] : b[1]])];
    }
    case 'Transpose': {
      const perm = attr(node, 'perm')!.ints!.map(Number);
      return [{ ...input(0), dims: perm.map((p) => input(0).dims[p]) }];
    }
    case 'Reshape': {
      const x = input(0);
      const target = input(1).ints!;
      const known = target.reduce((a, d, i) => a * (d === -1 ? 1 : d === 0 ? x.dims[i] : d), 1);
      return [{ ...x, dims: target.map((d, i) => (d === -1 ? count(x.dims) / known : d === 0 ? x.dims[i] : d)) }];
    }
    case 'ReduceSum':
    case 'ReduceMean':
    case 'ReduceMax': {
      const x = input(0);
      const axes = new Set(input(1).ints!.map((a) => axisOf(a, x.dims.length)));
      const keep = intAttr(node, 'keepdims', 1) === 1;
      const dims = keep ? x.dims.map((d, i) => (axes.has(i) ? 1 : d)) : x.dims.filter((_, i) => !axes.has(i));
      return [{ ...x, dims }];
    }
    case 'Shape':
      return [{ dims: [input(0).dims.length], bytesPerElement: 8, ints: input(0).dims }];
    case 'Pad': {
      const x = input(0);
      const pads = input(1).ints!;
      const rank = x.dims.length;
      return [{ ...x, dims: x.dims.map((d, i) => d + pads[i] + pads[i + rank]), ints: undefined }];
    }
    case 'Slice': {
      const x = input(0);
      const [starts, ends] = [input(1).ints!, input(2).ints!];
      const axis = node.input!.length > 3 ? axisOf(input(3).ints![0], x.dims.length) : 0;
      const clamp = (v: number) => Math.max(0, Math.min(x.dims[axis], v < 0 ? v + x.dims[axis] : v));
      const [from, to] = [clamp(starts[0]), clamp(ends[0])];
      const dims = x.dims.map((d, i) => (i === axis ? Math.max(0, to - from) : d));
      return [
        { dims, bytesPerElement: x.bytesPerElement, ints: x.dims.length === 1 ? x.ints?.slice(from, to) : undefined },
      ];
    }
    case 'Concat': {
      const inputs = (node.input ?? []).map((_, i) => input(i));
      const axis = axisOf(intAttr(node, 'axis', 0), inputs[0].dims.length);
      const dims = [...inputs[0].dims];
      dims[axis] = inputs.reduce((sum, v) => sum + v.dims[axis], 0);
      const ints = inputs.every((v) => v.ints) ? inputs.flatMap((v) => v.ints!) : undefined;
      return [{ dims, bytesPerElement: inputs[0].bytesPerElement, ints }];
    }
    case 'Split': {
      const x = input(0);
      const axis = axisOf(intAttr(node, 'axis', 0), x.dims.length);
      return input(1).ints!.map((size) => ({ ...x, dims: x.dims.map((d, i) => (i === axis ? size : d)) }));
    }
    case 'Unsqueeze': {
      const x = input(0);
      const axes = input(1)
        .ints!.map((a) => axisOf(a, x.dims.length + 1))
        .sort((a, b) => a - b);
      const dims = [...x.dims];
      for (const a of axes) dims.splice(a, 0, 1);
      return [{ ...x, dims }];
    }
    case 'Expand':
      return [{ ...input(0), dims: broadcast(input(0).dims, input(1).ints!) }];
    case 'Gather':
      return [{ ...input(0), dims: [...input(1).dims, ...input(0).dims.slice(1)] }];
    case 'GatherElements':
      return [{ ...input(0), dims: input(1).dims }];
    case 'ScatterElements':
      return [input(0)];
    default:
      // A new op in the engine's graphs needs its shape rule here, or the plan would silently miss its memory.
      throw new Error(`memory plan: no shape rule for ${op}`);
  }
}

/** Ops ORT runs without a buffer of their own: Reshape and Identity alias their input; Unsqueeze too. */
const ALIASING_OPS = new Set(['Reshape', 'Identity', 'Unsqueeze']);

/**
 * Values ORT's graph optimizer removes (level 'all'): a Transpose of the last two axes read only by MatMuls becomes
 * a transposed operand of a FusedMatMul; a MatMul read only by a Mul with a scalar constant absorbs the scale.
 * Either way no buffer is allocated for the value.
 */
function fusedAway(nodes: NodeProto[], scope: Map<string, Value>): Set<string> {
  const readers = new Map<string, NodeProto[]>();
  for (const node of nodes)
    for (const name of node.input ?? []) readers.set(name, [...(readers.get(name) ?? []), node]);
  const fused = new Set<string>();
  for (const node of nodes) {
    const out = node.output![0];
    const users = readers.get(out) ?? [];
    if (node.opType === 'Transpose') {
      const perm = attr(node, 'perm')!.ints!.map(Number);
      const swapsLastTwo = perm.every(
        (p, i) => p === (i === perm.length - 2 ? i + 1 : i === perm.length - 1 ? i - 1 : i),
      );
      if (swapsLastTwo && users.length > 0 && users.every((u) => u.opType === 'MatMul')) fused.add(out);
    }
    if (node.opType === 'MatMul' && users.length === 1 && users[0].opType === 'Mul') {
      const other = users[0].input!.find((name) => name !== out);
      if (other && count(scope.get(other)?.dims ?? [0]) === 1) fused.add(out);
    }
  }
  return fused;
}

interface BranchRun {
  /** Most bytes alive at once inside the branch, its outputs included. */
  peakBytes: number;
  outputs: Value[];
}

/**
 * ORT's default execution order (GraphViewer): a depth-first walk back from the nodes nothing reads, taken in node
 * order, each node placed once all of its producers are, producers visited highest index first. It is not the order
 * the graph lists: the loss head, for one, finishes d hidden before the loss, so the shifted logits [rows, V] stay
 * alive beside the probabilities and their gradient (measured: three [rows, V] values at the peak, not two).
 */
function executionOrder(nodes: NodeProto[]): NodeProto[] {
  const producer = new Map<string, number>();
  nodes.forEach((node, i) => node.output!.forEach((name) => producer.set(name, i)));
  const read = new Set(nodes.flatMap((node) => node.input ?? []));
  const stack: [number, boolean][] = [];
  nodes.forEach((node, i) => {
    if (!node.output!.some((name) => read.has(name))) stack.unshift([i, false]);
  });
  const visited = new Set<number>();
  const order: NodeProto[] = [];
  while (stack.length) {
    const [i, leaving] = stack.pop()!;
    if (leaving) {
      order.push(nodes[i]);
      continue;
    }
    if (visited.has(i)) continue;
    visited.add(i);
    stack.push([i, true]);
    const producers = [
      ...new Set((nodes[i].input ?? []).map((name) => producer.get(name)).filter((j) => j !== undefined)),
    ];
    for (const j of producers.sort((a, b) => a - b)) stack.push([j, false]);
  }
  return order;
}

/** Names that `graph` (its nested subgraphs included) reads from enclosing scopes: an If node's implicit inputs. */
function outerReads(graph: GraphProto): string[] {
  const defined = new Set<string>();
  const read = new Set<string>();
  const visit = (g: GraphProto) => {
    for (const init of g.initializer ?? []) defined.add(init.name!);
    for (const node of g.node ?? []) {
      for (const name of node.input ?? []) if (name) read.add(name);
      for (const name of node.output ?? []) defined.add(name);
      for (const a of node.attribute ?? []) if (a.g) visit(a.g);
    }
  };
  visit(graph);
  return [...read].filter((name) => !defined.has(name));
}

type BranchName = 'then_branch' | 'else_branch';

/**
 * Runs `nodes` on shapes as ORT's sequential executor does: in its execution order, each node allocates its outputs,
 * and a buffer is freed after the last node that reads it. Values of the enclosing scope (feeds, weights) are not
 * counted. An If runs `branch`, its peak on top of what is alive around it; it reads (and so keeps alive) every
 * outer value either branch reads.
 */
function walk(
  graph: { node?: NodeProto[] | null; output?: GraphProto['output'] },
  outer: Map<string, Value>,
  branch: BranchName,
): BranchRun {
  const withImplicit = (graph.node ?? []).map((node) =>
    node.opType === 'If'
      ? {
          ...node,
          input: [
            ...(node.input ?? []),
            ...new Set([...outerReads(attr(node, 'then_branch')!.g!), ...outerReads(attr(node, 'else_branch')!.g!)]),
          ],
        }
      : node,
  );
  const nodes = executionOrder(withImplicit);
  const scope = new Map(outer);
  const lastRead = new Map<string, number>();
  nodes.forEach((node, i) => (node.input ?? []).forEach((name) => lastRead.set(name, i)));
  const outputNames = new Set((graph.output ?? []).map((o) => o.name!));

  // Shapes first: the fusion rules look at constants and consumers. An If's branch runs on the scope so far.
  const inner = new Map<number, number>(); // node index -> bytes its branch holds at its peak beyond its outputs
  nodes.forEach((node, index) => {
    let values: Value[];
    if (node.opType === 'If') {
      const run = walk(attr(node, branch)!.g!, scope, branch);
      values = run.outputs;
      inner.set(index, run.peakBytes - run.outputs.reduce((sum, v) => sum + bytesOf(v), 0));
    } else {
      values = inferNode(node, (i) => {
        const v = scope.get(node.input![i]);
        if (!v) throw new Error(`memory plan: ${node.input![i]} read before it is defined`);
        return v;
      });
    }
    node.output!.forEach((name, i) => scope.set(name, values[i]));
  });
  const fused = fusedAway(nodes, scope);

  // A buffer is shared by a value and its aliases; it lives until the last read of any of them.
  const bufferOf = new Map<string, string>();
  const bufferEnd = new Map<string, number>();
  nodes.forEach((node, i) => {
    const [out] = node.output!;
    const source = node.input?.[0];
    const aliasing = (ALIASING_OPS.has(node.opType!) || fused.has(out)) && source !== undefined;
    const owner = aliasing ? (outer.has(source) ? source : bufferOf.get(source)) : undefined;
    for (const name of node.output!) bufferOf.set(name, owner ?? name);
    for (const name of node.output!) {
      const buffer = bufferOf.get(name)!;
      const end = outputNames.has(name) ? Infinity : (lastRead.get(name) ?? i);
      bufferEnd.set(buffer, Math.max(bufferEnd.get(buffer) ?? i, end));
    }
  });

  let alive = 0;
  let peakBytes = 0;
  const freeAt = new Map<number, number>();
  nodes.forEach((node, i) => {
    for (const name of node.output!) {
      if (bufferOf.get(name) !== name || outer.has(name)) continue; // an alias, or fused into its reader
      const bytes = bytesOf(scope.get(name)!);
      alive += bytes;
      const end = bufferEnd.get(name)!;
      if (end !== Infinity) freeAt.set(end, (freeAt.get(end) ?? 0) + bytes);
    }
    peakBytes = Math.max(peakBytes, alive + (inner.get(i) ?? 0));
    alive -= freeAt.get(i) ?? 0;
  });
  return { peakBytes, outputs: (graph.output ?? []).map((o) => scope.get(o.name!)!) };
}

interface ModelRun extends BranchRun {
  /** The initializers as the session keeps them: every weight and every value ORT folds from weights alone. */
  residentBytes: number;
}

/**
 * One call of a compiled model (an If on its first input): `branch` taken, `feeds` of these shapes (all 4 bytes per
 * element, only their count matters). ORT's constant folding runs first, as at session load: a node that reads only
 * initializers and constants is computed once and its result kept as a new initializer (the generation graph's
 * widening Casts; the training graphs keep theirs behind the `flat_shape` input).
 */
function runModel(graph: GraphProto, feeds: Record<string, number[] | Value>, branch: BranchName): ModelRun {
  const scope = new Map<string, Value>();
  for (const [name, fed] of Object.entries(feeds))
    scope.set(name, Array.isArray(fed) ? { dims: fed, bytesPerElement: 4 } : fed);
  const constant = new Set<string>();
  const fromWeights = new Set<string>();
  for (const init of graph.initializer ?? []) {
    scope.set(init.name!, { dims: (init.dims ?? []).map(Number), bytesPerElement: ELEMENT_BYTES[init.dataType!] });
    constant.add(init.name!);
    fromWeights.add(init.name!);
  }
  const kept: NodeProto[] = [];
  for (const node of graph.node ?? []) {
    const inputs = node.input ?? [];
    if (node.opType === 'If' || !inputs.every((name) => constant.has(name))) {
      kept.push(node);
      continue;
    }
    const values = inferNode(node, (i) => scope.get(inputs[i])!);
    node.output!.forEach((name, i) => {
      scope.set(name, values[i]);
      constant.add(name);
      if (inputs.some((input) => fromWeights.has(input))) fromWeights.add(name);
    });
  }
  const read = new Set<string>();
  for (const node of kept) {
    for (const name of node.input ?? []) read.add(name);
    for (const a of node.attribute ?? []) if (a.g) for (const name of outerReads(a.g)) read.add(name);
  }
  let residentBytes = 0;
  for (const name of fromWeights) if (read.has(name)) residentBytes += bytesOf(scope.get(name)!);
  return { ...walk({ node: kept, output: graph.output }, scope, branch), residentBytes };
}

// ---------------------------------------------------------------------------------------------------------------
// The engine's graphs for a spec, built on placeholder weight entries (only names, dtypes and shapes are read).

function placeholderTensors(spec: ModelSpec, weightBytesPerElement: number): Map<string, TensorEntry> {
  const dtype = weightBytesPerElement === 4 ? 'F32' : 'BF16';
  return new Map(
    [...expectedShapes(spec)].map(([name, shape]) => [
      name,
      {
        name,
        dtype,
        shape,
        file: 'weights.safetensors',
        byteOffset: 0,
        byteLength: count(shape) * weightBytesPerElement,
      },
    ]),
  );
}

/**
 * Layer 0's seven projections and an untied lm_head as the quantize-on-load cache holds them: nf4/fp4 codes U8
 * [n/2, 1], double-quantized absmax U8 [n/64] with its nested F32 scales [ceil(n/64/256)]; int4 codes U8
 * [out, in/32, 16] with F16 scales [out, in/32].
 */
function placeholderQuantized(spec: ModelSpec, quantize: QuantizeChoice): Map<string, Quantized4bitWeight> {
  if (quantize === 'none') return new Map();
  const layer0 = new Set([...Object.values(layerWeightNames(spec, 0)), 'lm_head.weight']);
  const shapes = expectedShapes(spec);
  const entry = (name: string, dtype: TensorEntry['dtype'], shape: number[], bytesPerElement: number) => ({
    name,
    dtype,
    shape,
    file: 'weights.safetensors',
    byteOffset: 0,
    byteLength: count(shape) * bytesPerElement,
  });
  const quantized = new Map<string, Quantized4bitWeight>();
  for (const name of quantizableWeightNames(spec).filter((n) => layer0.has(n))) {
    const [out, inWidth] = shapes.get(name)!;
    const n = out * inWidth;
    if (quantize === 'int4') {
      const blocks = inWidth / INT4_BLOCK_SIZE;
      if (!Number.isInteger(blocks)) continue; // quantizeOnLoad refuses such a model
      quantized.set(name, {
        name,
        shape: [out, inWidth],
        quantType: quantize,
        blockSize: INT4_BLOCK_SIZE,
        packed: entry(name, 'U8', [out, blocks, INT4_BLOCK_SIZE / 2], 1),
        absmax: entry(`${name}.scales`, 'F16', [out, blocks], 2),
        nested: null,
      });
      continue;
    }
    if (n % 64 !== 0) continue; // quantizeOnLoad refuses such a weight: planned as it is
    const blocks = n / 64;
    quantized.set(name, {
      name,
      shape: [out, inWidth],
      quantType: quantize,
      blockSize: 64,
      packed: entry(name, 'U8', [n / 2, 1], 1),
      absmax: entry(`${name}.absmax`, 'U8', [blocks], 1),
      nested: { absmax: entry(`${name}.nested_absmax`, 'F32', [Math.ceil(blocks / 256)], 4), offset: 0 },
    });
  }
  return quantized;
}

/** The table inputs (tableFeeds.ts) as shapes; a graph reads those it declares. */
const tableFeedShapes: Record<string, number[] | Value> = {
  quant_pairs: [256, 2],
  quant_byte_map: [256],
  flat_shape: { dims: [1], bytesPerElement: 8, ints: [-1] },
};

interface LayerCalls {
  /**
   * The forward call's peak inside ORT, and its outputs: hidden [N, C] plus, without checkpointing, the saved
   * activations. With a 4-bit base the peak includes the dequantized weights, alive until the If ends.
   */
  forward: BranchRun;
  /**
   * The backward call (recompute first when checkpointing): its peak, and its outputs dx [N, C] plus LoRA gradients.
   */
  backward: BranchRun;
  /** Bytes of the activations one layer's forward returns for its backward (0 with checkpointing). */
  savedBytes: number;
  /** Bytes of one layer's frozen weights as its session keeps them. */
  residentBytes: number;
}

function layerCalls(input: MemoryPlanInput, tokens: number, seqLen: number): LayerCalls {
  const { spec } = input;
  const targets = input.method === 'lora' ? checkedTargets(input.lora.targets, 'LoRA targets') : [];
  const quantized = placeholderQuantized(spec, input.quantize);
  const graph = buildTrainingLayerGraph({
    spec,
    layerIndex: 0,
    tensors: placeholderTensors(spec, input.weightBytesPerElement),
    externalLocation: (entry) => entry.file,
    lora: { rank: input.lora.rank, scale: 1, targets, dropout: false },
    gradientCheckpointing: input.gradientCheckpointing,
    quantized,
  });
  const model = graph.model.graph!;
  const feeds: Record<string, number[] | Value> = {
    forward: [],
    x: [tokens, spec.hiddenSize],
    dy: [1],
    cos: [1, 1, 1, seqLen, spec.headDim],
    sin: [1, 1, 1, seqLen, spec.headDim],
    mask: [1, 1, 1, seqLen, seqLen],
  };
  Object.assign(feeds, tableFeedShapes);
  for (const target of targets) {
    const shape = targetShape(spec, target);
    Object.assign(feeds, {
      [`lora_A.${target}`]: [input.lora.rank, shape.in],
      [`lora_B.${target}`]: [shape.out, input.lora.rank],
    });
  }
  const saved = (model.input ?? []).filter((i) => i.name!.startsWith('saved_')).map((i) => i.name!);
  for (const name of saved) feeds[name] = [1];
  const forward = runModel(model, feeds, 'then_branch');
  const savedValues = forward.outputs.slice(1, 1 + graph.forwardAux);
  saved.forEach((name, k) => (feeds[name] = savedValues[k].dims));
  feeds.dy = [tokens, spec.hiddenSize];
  const backward = runModel(model, feeds, 'else_branch');
  return {
    forward,
    backward,
    savedBytes: savedValues.reduce((sum, v) => sum + bytesOf(v), 0),
    residentBytes: forward.residentBytes,
  };
}

/** The loss head over `rows` rows: final norm, logits [rows, V], cross-entropy and d hidden [rows, C]. */
function lossHead(input: MemoryPlanInput, rows: number): ModelRun {
  const { spec } = input;
  const model = buildHeadGraph({
    spec,
    tensors: placeholderTensors(spec, input.weightBytesPerElement),
    externalLocation: (e) => e.file,
    quantized: placeholderQuantized(spec, input.quantize),
  }).graph!;
  // targets are int32: only their count matters here.
  return runModel(
    model,
    {
      embed: [],
      tokens: [1, 1, spec.hiddenSize],
      prefix: [0, spec.hiddenSize],
      hidden: [rows, spec.hiddenSize],
      targets: [rows, 1],
      weight: [rows, 1],
      ...tableFeedShapes,
    },
    'else_branch',
  );
}

// ---------------------------------------------------------------------------------------------------------------
// The plan.

function trainableElements(input: MemoryPlanInput): number {
  const { spec } = input;
  if (input.method === 'prompt-tuning') return input.numVirtualTokens * spec.hiddenSize;
  let perLayer = 0;
  for (const target of checkedTargets(input.lora.targets, 'LoRA targets')) {
    const shape = targetShape(spec, target);
    perLayer += input.lora.rank * (shape.in + shape.out);
  }
  return perLayer * spec.numLayers;
}

const MIB = 2 ** 20;

/**
 * Node 20 + onnxruntime-node 1.30 with one trivial CPU session, inside a worker thread as the engine runs: 97 MiB of
 * peak RSS on the 2-core Debian VM of docs/benchmarks.md (maxRSS of a fresh process, three runs, 95-100 MiB).
 */
const NODE_AND_ORT_BYTES = 97 * MIB;
/** The engine's own modules, and each session's graph, kernels and thread pool: RSS after load, 4 to 16 layers. */
const ENGINE_MODULES_BYTES = 8 * MIB;
const PER_SESSION_BYTES = 1.5 * MIB;
/**
 * Freed memory glibc keeps. Sessions run without ORT's arena, so tensors come from malloc. A 4-bit base's engine
 * process maps buffers of 4 MiB and more and gives them back when freed; any other keeps a heap for reuse, whose small
 * freed chunks merge with their neighbours (engineMallocEnv). Fitted on peak RSS measured on the 2-core VM (8 layers,
 * 512-1024 tokens, f32, bf16 and nf4; docs/ARCHITECTURE.md): the heap keeps about a quarter of the largest call's
 * working set, and, when a hidden state [N, C] is under 4 MiB (where this was fitted), 24 MiB plus about three hidden
 * states per layer for a 4-bit base, two for any other. Larger hidden states are counted as none: an 8B 4-bit step at
 * 512 tokens keeps none.
 */
const RETAINED_WORKING_SET = 0.25;
const RETAINED_SMALL_BUFFERS_BYTES = 24 * MIB;
const RETAINED_HIDDEN_STATES_PER_LAYER = { fourBit: 3, other: 2 };
const SMALL_HIDDEN_STATE_BYTES = 4 * MIB;

export function planTrainingMemory(asked: MemoryPlanInput): MemoryPlan {
  // int4 gives a tied model a 4-bit lm_head of its own (quantizeOnLoad.ts): it runs as an untied one.
  const untie = asked.quantize === 'int4' && asked.spec.tieWordEmbeddings;
  const input = untie ? { ...asked, spec: { ...asked.spec, tieWordEmbeddings: false } } : asked;
  const { spec } = input;
  const virtual = input.method === 'prompt-tuning' ? input.numVirtualTokens : 0;
  const seqLen = input.seqLen + virtual;
  const tokens = input.batchSize * seqLen;
  const hidden = tokens * spec.hiddenSize * 4; // one [N, C] fp32 hidden state
  const L = spec.numLayers;

  const layer = layerCalls(input, tokens, seqLen);
  // onnxruntime-node copies each output into a JavaScript buffer while ORT's own is still alive.
  const callPeak = (run: BranchRun) => Math.max(run.peakBytes, 2 * run.outputs.reduce((sum, v) => sum + bytesOf(v), 0));
  const head = lossHead(input, input.device === 'webgpu' ? tokens : Math.min(HEAD_CHUNK_ROWS, tokens));

  // What the host holds during each phase, and the call running then.
  const phases = [
    // The last layer forward: L hidden states and L - 1 layers' saved activations held.
    { held: L * hidden + (L - 1) * layer.savedBytes, working: callPeak(layer.forward), logits: 0 },
    // The loss head: L + 1 hidden states, every saved activation, and d hidden [N, C] being filled.
    { held: (L + 2) * hidden + L * layer.savedBytes, working: 0, logits: callPeak(head) },
    // The first layer backward: L + 1 hidden states, dy, and every saved activation.
    { held: (L + 2) * hidden + L * layer.savedBytes, working: callPeak(layer.backward), logits: 0 },
  ];
  const peak = phases.reduce((a, b) => (b.held + b.working + b.logits > a.held + a.working + a.logits ? b : a));
  // glibc keeps part of the largest call's buffers, whichever phase that call ran in.
  const largestCall = Math.max(...phases.map((phase) => phase.working + phase.logits));

  const trainable = trainableElements(input);
  const parts = {
    // Each session's weights as it holds them: fp32, 16-bit or 4-bit, mapped from the file. An untied embedding is
    // in none: the host reads the rows a micro-batch needs.
    weights: head.residentBytes + L * layer.residentBytes,
    checkpoints: peak.held,
    layerWorkingSet: peak.working,
    logits: peak.logits,
    // Parameters and gradients, plus AdamW's two moments or SGD's momentum buffer, all fp32.
    optimizerState: trainable * 4 * (2 + (input.optimizer === 'adamw' ? 2 : 1)),
    runtime:
      NODE_AND_ORT_BYTES +
      ENGINE_MODULES_BYTES +
      PER_SESSION_BYTES * (L + 1) +
      RETAINED_WORKING_SET * largestCall +
      (hidden < SMALL_HIDDEN_STATE_BYTES
        ? RETAINED_SMALL_BUFFERS_BYTES +
          RETAINED_HIDDEN_STATES_PER_LAYER[input.quantize === 'none' ? 'other' : 'fourBit'] * L * hidden
        : 0),
  };
  return { totalBytes: Object.values(parts).reduce((a, b) => a + b, 0), parts };
}

/**
 * The peak of a run with the studio's default settings (LoRA r 16 on q, k, v, o; 4 rows of 512 tokens; checkpointing;
 * AdamW; CPU): the "does it fit" answered before a model is downloaded, when nothing else is chosen yet.
 */
export function planDefaultTraining(
  spec: ModelSpec,
  weightBytesPerElement: number,
  quantize: QuantizeChoice = 'none',
): MemoryPlan {
  return planTrainingMemory({
    spec,
    weightBytesPerElement,
    quantize,
    method: 'lora',
    lora: { rank: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] },
    numVirtualTokens: 0,
    batchSize: 4,
    seqLen: 512,
    gradientCheckpointing: true,
    optimizer: 'adamw',
    device: 'cpu',
  });
}

/**
 * The single change (4-bit base weights, checkpointing on, fewer rows, shorter sequences, smaller rank) that makes
 * `input` fit in `availableBytes`, or null when it fits already or nothing simple does. Tried in that order, each as
 * gently as it can be: the most rows, the longest sequence, the largest rank that fit (halving from the current
 * value). Quantizing comes first: it leaves every setting the user chose as it is, and saves the most.
 */
export function suggestFit(
  input: MemoryPlanInput,
  availableBytes: number,
): { change: string; input: MemoryPlanInput; plan: MemoryPlan } | null {
  if (planTrainingMemory(input).totalBytes <= availableBytes) return null;
  const fits = (candidate: MemoryPlanInput) => {
    const plan = planTrainingMemory(candidate);
    return plan.totalBytes <= availableBytes ? plan : null;
  };
  const halving = (from: number, floor: number) => {
    const values: number[] = [];
    for (let v = Math.floor(from / 2); v >= floor; v = Math.floor(v / 2)) values.push(v);
    return values;
  };
  const candidates: { change: string; input: MemoryPlanInput }[] = [];
  if (input.quantize === 'none')
    candidates.push({ change: 'quantize the base weights to 4 bits (nf4)', input: { ...input, quantize: 'nf4' } });
  if (!input.gradientCheckpointing)
    candidates.push({ change: 'turn gradient checkpointing on', input: { ...input, gradientCheckpointing: true } });
  for (const batchSize of halving(input.batchSize, 1))
    candidates.push({ change: `batch size ${batchSize} (was ${input.batchSize})`, input: { ...input, batchSize } });
  for (const seqLen of halving(input.seqLen, 64))
    candidates.push({ change: `max sequence length ${seqLen} (was ${input.seqLen})`, input: { ...input, seqLen } });
  if (input.method === 'lora') {
    for (const rank of halving(input.lora.rank, 1))
      candidates.push({
        change: `LoRA rank ${rank} (was ${input.lora.rank})`,
        input: { ...input, lora: { ...input.lora, rank } },
      });
  }
  for (const candidate of candidates) {
    const plan = fits(candidate.input);
    if (plan) return { ...candidate, plan };
  }
  return null;
}
