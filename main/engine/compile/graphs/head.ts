// The model's two ends as one ONNX model, an If on the boolean input `embed`, so a tied embedding is loaded once.
//   then: token embedding, each row's h0 = [prefix; E[ids]] (prefix = prompt-tuning virtual tokens, often none).
//   else: final RMSNorm, lm_head, next-token cross-entropy and its backward to the last hidden state.
// Legend: B = batch, T = tokens per row, n = virtual tokens, N = token rows (a chunk of B * (n + T)), C = hidden,
//   V = vocabulary.
import type { ModelSpec } from '../../../model/architecture.js';
import type { TensorEntry } from '../../../model/safetensors.js';
import { crossEntropyBackward, crossEntropyForward } from '../blocks/crossEntropy.js';
import { rmsnormBackward, rmsnormForward } from '../blocks/rmsnorm.js';
import { GraphBuilder, type ModelProto } from '../onnx/graph.js';

/**
 * Rows per loss-head call on the CPU: 128 rows of a 49152-word vocabulary keep each [rows, V] tensor near 25 MB at no
 * measurable speed cost.
 */
export const HEAD_CHUNK_ROWS = 128;

export interface HeadGraphOptions {
  spec: ModelSpec;
  tensors: Map<string, TensorEntry>;
  externalLocation: (entry: TensorEntry) => string;
}

/**
 * Inputs: embed (bool), ids [B, T] int32, prefix [n, C], hidden [N, C], targets [N, 1] int32, weight [N, 1].
 * Outputs: out_0 = h0 [B * (n + T), C] (embed) or d hidden [N, C] (loss); out_1 = loss [] (loss branch).
 */
export function buildHeadGraph(options: HeadGraphOptions): ModelProto {
  const { spec, tensors } = options;
  const g = new GraphBuilder('head');
  const weight = (name: string) =>
    g.externalInitializer(tensors.get(name)!, options.externalLocation(tensors.get(name)!));
  const embedding = weight('model.embed_tokens.weight'); // [V, C]
  const lmHead = spec.tieWordEmbeddings ? embedding : weight('lm_head.weight'); // [V, C]
  const finalNorm = weight('model.norm.weight'); // [C]

  const embed = g.input('embed', 'bool', []);
  const ids = g.input('ids', 'int32', ['B', 'T']);
  const prefix = g.input('prefix', 'float', ['n', spec.hiddenSize]);
  const hidden = g.input('hidden', 'float', ['N', spec.hiddenSize]);
  const targets = g.input('targets', 'int32', ['N', 1]);
  const tokenWeight = g.input('weight', 'float', ['N', 1]);

  const embedBranch = g.subgraph('embed');
  const e = embedBranch;
  const tokens = e.op('Gather', [embedding, ids], { axis: 0 }, 'token_embeddings'); // [B, T, C]
  const [rows] = e.node('Slice', [e.op('Shape', [ids]), e.constantInt64([0]), e.constantInt64([1])], {}, 1, 'rows');
  const [virtual] = e.node(
    'Slice',
    [e.op('Shape', [prefix]), e.constantInt64([0]), e.constantInt64([1])],
    {},
    1,
    'virtual',
  );
  const prefixShape = e.op('Concat', [rows, virtual, e.constantInt64([spec.hiddenSize])], { axis: 0 });
  const prefixRows = e.op(
    'Expand',
    [e.op('Unsqueeze', [prefix, e.constantInt64([0])]), prefixShape],
    {},
    'prefix_rows',
  ); // [B, n, C]
  // [B * (n + T), C]
  const h0 = e.reshape(e.op('Concat', [prefixRows, tokens], { axis: 1 }), [-1, spec.hiddenSize], 'h0');
  embedBranch.output(h0, 'embed_0');
  embedBranch.output(embedBranch.constantFloat([0], [], 'unused'), 'embed_1');

  const lossBranch = g.subgraph('loss');
  const normed = rmsnormForward(lossBranch, hidden, finalNorm, spec.rmsNormEps); // [N, C]
  const logits = lossBranch.gemm(normed.y, lmHead, { transB: true }, 'logits'); // [N, V]
  const ce = crossEntropyForward(lossBranch, logits, targets, tokenWeight);
  const dLogits = crossEntropyBackward(lossBranch, targets, tokenWeight, ce.saved); // [N, V]
  const dNormed = lossBranch.matmul(dLogits, lmHead); // [N, C]
  lossBranch.output(rmsnormBackward(lossBranch, dNormed, normed.saved, finalNorm), 'loss_0');
  lossBranch.output(ce.loss, 'loss_1');

  const [first, second] = g.node('If', [embed], { then_branch: embedBranch, else_branch: lossBranch }, 2, 'head');
  g.output(first, 'out_0', 'float', ['N', spec.hiddenSize]);
  g.output(second, 'out_1', 'float', null);
  return g.toModel();
}
