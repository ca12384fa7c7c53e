// The model's two ends as one ONNX model, an If on the boolean input `embed`, so a tied embedding is loaded once.
//   then: each row's h0 = [prefix; E[ids]] (prefix = prompt-tuning virtual tokens, often none; E[ids] the host's).
//   else: final RMSNorm, lm_head, next-token cross-entropy and its backward to the last hidden state.
// Frozen weights stay as stored. The token embeddings come in as rows the host read from the checkpoint file
// (TrainableModel.embed): the table is never an initializer of this graph unless it is also the (tied) lm_head. A
// gather inside ORT, from its mapping of the file, made about 1.3 MB resident per token row here (the page cache's
// large folios are mapped whole). A 16-bit or 4-bit lm_head is
// widened or dequantized a vocabulary chunk at a time, for the logits and again for d hidden, so at most one chunk
// is fp32 at once; an fp32 one is read as it is.
// Legend: B = batch, T = tokens per row, n = virtual tokens, N = token rows (a chunk of B * (n + T)), C = hidden,
//   V = vocabulary, Vk = one vocabulary chunk.
import type { ModelSpec } from '../../../model/architecture.js';
import type { TensorEntry } from '../../../model/safetensors.js';
import type { Quantized4bitWeight } from '../../../model/quant/bnb4bit.js';
import { crossEntropyBackward, crossEntropyForward } from '../blocks/crossEntropy.js';
import { declareDequantTables, dequantize4bit, rowAlignment4bit } from '../blocks/dequantize4bit.js';
import { rmsnormBackward, rmsnormForward } from '../blocks/rmsnorm.js';
import { GraphBuilder, type ModelProto } from '../onnx/graph.js';

/**
 * Rows per loss-head call on the CPU: 128 rows of a 49152-word vocabulary keep each [rows, V] tensor near 25 MB at no
 * measurable speed cost.
 */
export const HEAD_CHUNK_ROWS = 128;

/** Elements of one lm_head chunk widened at a time: 16 MB as fp32. */
export const LM_HEAD_CHUNK_ELEMENTS = 2 ** 22;

export interface HeadGraphOptions {
  spec: ModelSpec;
  tensors: Map<string, TensorEntry>;
  externalLocation: (entry: TensorEntry) => string;
  /** A 4-bit checkpoint's quantized weights: an untied lm_head may be one. */
  quantized: ReadonlyMap<string, Quantized4bitWeight>;
  /** Elements of a 16-bit or 4-bit lm_head widened at once (LM_HEAD_CHUNK_ELEMENTS unless given). */
  lmHeadChunkElements?: number;
}

/** Row ranges of the lm_head's vocabulary chunks of about `elements` each, each starting where `alignment` allows. */
function vocabularyChunks(vocab: number, hidden: number, elements: number, alignment = 1): [number, number][] {
  const rows = Math.max(alignment, Math.floor(elements / hidden / alignment) * alignment);
  const chunks: [number, number][] = [];
  for (let start = 0; start < vocab; start += rows) chunks.push([start, Math.min(vocab, start + rows)]);
  return chunks;
}

/**
 * Inputs: embed (bool), tokens [B, T, C] (the ids' embedding rows), prefix [n, C], hidden [N, C],
 * targets [N, 1] int32, weight [N, 1].
 * Outputs: out_0 = h0 [B * (n + T), C] (embed) or d hidden [N, C] (loss); out_1 = loss [] (loss branch).
 */
export function buildHeadGraph(options: HeadGraphOptions): ModelProto {
  const { spec, tensors } = options;
  const C = spec.hiddenSize;
  const g = new GraphBuilder('head', { keep16bit: true });
  const entry = (name: string) => tensors.get(name)!;
  const stored = (name: string) => g.externalInitializer(entry(name), options.externalLocation(entry(name)));
  const finalNorm = g.frozenWeight(entry('model.norm.weight'), options.externalLocation(entry('model.norm.weight')));
  const lmHead = lmHeadChunks(g, options, spec.tieWordEmbeddings ? stored('model.embed_tokens.weight') : null);

  const embed = g.input('embed', 'bool', []);
  const tokens = g.input('tokens', 'float', ['B', 'T', C]);
  const prefix = g.input('prefix', 'float', ['n', C]);
  const hidden = g.input('hidden', 'float', ['N', C]);
  const targets = g.input('targets', 'int32', ['N', 1]);
  const tokenWeight = g.input('weight', 'float', ['N', 1]);

  const embedBranch = g.subgraph('embed');
  const e = embedBranch;
  const [rows] = e.node('Slice', [e.op('Shape', [tokens]), e.constantInt64([0]), e.constantInt64([1])], {}, 1, 'rows');
  const [virtual] = e.node(
    'Slice',
    [e.op('Shape', [prefix]), e.constantInt64([0]), e.constantInt64([1])],
    {},
    1,
    'virtual',
  );
  const prefixShape = e.op('Concat', [rows, virtual, e.constantInt64([C])], { axis: 0 });
  const prefixRows = e.op(
    'Expand',
    [e.op('Unsqueeze', [prefix, e.constantInt64([0])]), prefixShape],
    {},
    'prefix_rows',
  ); // [B, n, C]
  // [B * (n + T), C]
  const h0 = e.reshape(e.op('Concat', [prefixRows, tokens], { axis: 1 }), [-1, C], 'h0');
  embedBranch.output(h0, 'embed_0');
  embedBranch.output(embedBranch.constantFloat([0], [], 'unused'), 'embed_1');

  const lossBranch = g.subgraph('loss');
  const l = lossBranch;
  const normed = rmsnormForward(l, hidden, finalNorm, spec.rmsNormEps); // [N, C]
  let logits: string; // [N, V]
  let dNormed: string; // [N, C]
  let ce: ReturnType<typeof crossEntropyForward>;
  if (lmHead.whole) {
    logits = l.gemm(normed.y, lmHead.whole, { transB: true }, 'logits');
    ce = crossEntropyForward(l, logits, targets, tokenWeight);
    dNormed = l.matmul(crossEntropyBackward(l, targets, tokenWeight, ce.saved), lmHead.whole);
  } else {
    const parts = lmHead.chunks.map(([start, end]) =>
      l.gemm(normed.y, lmHead.rows(l, start, end, false), { transB: true }, 'logits_part'),
    ); // [N, Vk] each
    logits = parts.length === 1 ? parts[0] : l.op('Concat', parts, { axis: 1 }, 'logits');
    ce = crossEntropyForward(l, logits, targets, tokenWeight);
    const dLogits = crossEntropyBackward(l, targets, tokenWeight, ce.saved); // [N, V]
    // The chunks again, not the forward's: reusing those would keep every chunk alive until here.
    const terms = lmHead.chunks.map(([start, end]) => {
      const dPart = l.op('Slice', [dLogits, l.constantInt64([start]), l.constantInt64([end]), l.constantInt64([1])]);
      return l.matmul(dPart, lmHead.rows(l, start, end, true)); // [N, C]
    });
    dNormed = terms.reduce((sum, term) => l.add(sum, term));
  }
  lossBranch.output(rmsnormBackward(l, dNormed, normed.saved, finalNorm), 'loss_0');
  lossBranch.output(ce.loss, 'loss_1');

  const [first, second] = g.node('If', [embed], { then_branch: embedBranch, else_branch: lossBranch }, 2, 'head');
  g.output(first, 'out_0', 'float', ['N', C]);
  g.output(second, 'out_1', 'float', null);
  return g.toModel();
}

interface LmHead {
  /** An fp32 lm_head, read whole. */
  whole: string | null;
  chunks: [number, number][];
  /**
   * Rows [start, end) as fp32 [end - start, C], emitted in `b`. `again` marks the backward's copy: its Slices name
   * their step, so ORT's common-subexpression elimination cannot merge it with the forward's.
   */
  rows: (b: GraphBuilder, start: number, end: number, again: boolean) => string;
}

/** The lm_head ([V, C]): `tiedEmbedding` is the embedding's stored initializer when the two are tied. */
function lmHeadChunks(g: GraphBuilder, options: HeadGraphOptions, tiedEmbedding: string | null): LmHead {
  const { spec } = options;
  const C = spec.hiddenSize;
  const name = spec.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  const elements = options.lmHeadChunkElements ?? LM_HEAD_CHUNK_ELEMENTS;
  const quantized = options.quantized.get(name);
  if (quantized) {
    const external = (entry: TensorEntry) => g.externalInitializer(entry, options.externalLocation(entry));
    const initializers = {
      packed: external(quantized.packed),
      absmax: external(quantized.absmax),
      nestedAbsmax: quantized.nested ? external(quantized.nested.absmax) : undefined,
    };
    const tables = declareDequantTables(g);
    return {
      whole: null,
      chunks: vocabularyChunks(spec.vocabSize, C, elements, rowAlignment4bit(quantized)),
      rows: (b, start, end, again) =>
        dequantize4bit(b, quantized, initializers, tables, { start, end, distinct: again }),
    };
  }
  const entry = options.tensors.get(name)!;
  const weight = tiedEmbedding ?? g.externalInitializer(entry, options.externalLocation(entry));
  if (entry.dtype === 'F32') return { whole: weight, chunks: [], rows: () => weight };
  return {
    whole: null,
    chunks: vocabularyChunks(spec.vocabSize, C, elements),
    rows: (b, start, end, again) => {
      const inputs = [b.reshape(weight, b.flatShape()), b.constantInt64([start * C]), b.constantInt64([end * C])];
      inputs.push(b.constantInt64([0]));
      if (again) inputs.push(b.constantInt64([1]));
      const part = b.cast(b.op('Slice', inputs, {}, 'lm_head_rows'), 'float', 'widen'); // [(end - start) * C]
      return b.reshape(part, [end - start, C], 'lm_head_rows'); // [Vk, C]
    },
  };
}
