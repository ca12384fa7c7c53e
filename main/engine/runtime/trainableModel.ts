// A model ready to train: one ONNX Runtime session for the embedding + loss head and one per decoder layer.
// forwardBackward runs the head (embed), every layer forward keeping only its input (the checkpoint), the head
// (loss, d hidden) in row chunks, then every layer backward in reverse, adding LoRA gradients into `grads`.
// Legend: B = batch, T = sequence, N = B * T tokens, C = hidden, D = head width.
import type { ExecutionDevice } from '../../../shared/training.js';
import type { LoraPair, LoraWeights } from '../../adapter/loraAdapter.js';
import { ropeTables, type TargetModule } from '../../model/architecture.js';
import type { ModelFolder } from '../../model/modelFolder.js';
import { readTensorRowsF32, type TensorEntry } from '../../model/safetensors.js';
import { fillDropoutMask } from './dropout.js';
import { buildTrainingLayerGraph, type TrainingLayerGraph, type LoraPlan } from '../compile/graphs/trainingLayer.js';
import { buildHeadGraph, HEAD_CHUNK_ROWS } from '../compile/graphs/head.js';
import { encodeModel, type ModelProto } from '../compile/onnx/graph.js';
import { graphTableFeeds, tableFeedsFor } from './tableFeeds.js';
import { placeGraphs } from './graphPlacement.js';
import { release, runChecked, Tensor, type Session, type SessionTuning } from './runtime.js';

export interface TrainableModelOptions {
  device: ExecutionDevice;
  lora: LoraPlan;
  dropoutProbability: number;
  gradientCheckpointing: boolean;
  /** Rows of the [N, V] logits computed at once; bounds the head's memory. */
  headChunkRows?: number;
  /** Elements of a 16-bit or 4-bit lm_head widened at once (head.ts's default otherwise). */
  lmHeadChunkElements?: number;
  /** Threads and the rest of how its sessions are created. */
  tuning: SessionTuning;
  /** Prompt tuning: this many trainable virtual token embeddings are placed before every row (0 = none). */
  virtualTokens?: number;
  /** Where the compiled graphs are written: beside the weights when the folder is writable (auto), or a temp folder. */
  graphPlacement?: 'auto' | 'temp';
  onCompile?: (done: number, total: number) => void;
}

/** One micro-batch, labels not yet shifted (position t is scored against labels[t + 1], as transformers does). */
export interface MicroBatch {
  batchSize: number;
  seqLen: number;
  inputIds: Int32Array; // [B * T]
  labels: Int32Array; // [B * T], -100 ignored
  /** Packed rows: each token's position within its own sample [B * T] (default 0..T-1 on every row). */
  positionIds?: Int32Array;
  /** Packed rows: which sample each token belongs to [B * T]; attention never crosses samples. */
  segmentIds?: Int32Array;
}

/** Trainable virtual token embeddings [n, C] and their gradient, for prompt tuning. */
export interface VirtualTokens {
  embeddings: Float32Array;
  grad: Float32Array;
}

/**
 * The batch as the layers see it when n virtual tokens lead every row: n more positions whose labels are ignored.
 * As in PEFT, the last virtual position predicts the first real token.
 */
export function withVirtualTokens(batch: MicroBatch, n: number): MicroBatch {
  if (n === 0) return batch;
  if (batch.positionIds || batch.segmentIds) throw new Error('packed rows cannot carry prompt-tuning virtual tokens');
  const T = batch.seqLen + n;
  const labels = new Int32Array(batch.batchSize * T).fill(-100);
  for (let b = 0; b < batch.batchSize; b++)
    labels.set(batch.labels.subarray(b * batch.seqLen, (b + 1) * batch.seqLen), b * T + n);
  return { batchSize: batch.batchSize, seqLen: T, inputIds: batch.inputIds, labels };
}

/** Label tokens a micro-batch scores after the shift: the loss is averaged over these. */
export function countLabelTokens(batch: MicroBatch): number {
  let count = 0;
  for (let b = 0; b < batch.batchSize; b++) {
    for (let t = 1; t < batch.seqLen; t++) if (batch.labels[b * batch.seqLen + t] >= 0) count++;
  }
  return count;
}

interface Layer {
  session: Session;
  /** What its outputs hold; its model is dropped once loaded. */
  graph: Omit<TrainingLayerGraph, 'model'>;
}

export class TrainableModel {
  private readonly positionTables = new Map<number, { cos: Tensor; sin: Tensor; mask: Tensor }>();
  private readonly unused = new Tensor('float32', new Float32Array(1), [1]);
  /** The embedding, whose rows each micro-batch reads from the checkpoint file. */
  private readonly embeddingTable: TensorEntry;
  /** The table inputs of each session (flat_shape; the dequantization tables of a 4-bit checkpoint). */
  private readonly tables: Map<Session, Record<string, Tensor>>;

  private constructor(
    readonly folder: ModelFolder,
    private readonly options: TrainableModelOptions,
    private readonly cleanup: () => void,
    private readonly head: Session,
    private readonly layers: Layer[],
  ) {
    this.embeddingTable = folder.tensors.get('model.embed_tokens.weight')!;
    const tables = graphTableFeeds(folder);
    this.tables = new Map([head, ...layers.map((l) => l.session)].map((s) => [s, tableFeedsFor(s, tables)]));
  }

  /** Compiles the graphs and opens the sessions (see graphPlacement.ts for where the graphs go). */
  static async load(folder: ModelFolder, options: TrainableModelOptions): Promise<TrainableModel> {
    const place = placeGraphs(folder, options.graphPlacement ?? 'auto');
    const load = (name: string, model: ModelProto, residentOutput: string | null) =>
      place.open(name, encodeModel(model), options.device, options.tuning, residentOutput ? [residentOutput] : []);
    const sessions: Session[] = [];
    try {
      const total = folder.spec.numLayers + 1;
      const head = await load(
        'head',
        buildHeadGraph({
          spec: folder.spec,
          tensors: folder.tensors,
          externalLocation: place.location,
          quantized: folder.quantized,
          lmHeadChunkElements: options.lmHeadChunkElements,
        }),
        'out_0',
      );
      sessions.push(head);
      options.onCompile?.(1, total);
      const layers: Layer[] = [];
      for (let i = 0; i < folder.spec.numLayers; i++) {
        const { model, ...graph } = buildTrainingLayerGraph({
          spec: folder.spec,
          layerIndex: i,
          tensors: folder.tensors,
          externalLocation: place.location,
          lora: options.lora,
          gradientCheckpointing: options.gradientCheckpointing,
          quantized: folder.quantized,
        });
        // Prompt tuning reads layer 0's input gradient on the host, so that one output is not kept on the device.
        const session = await load(`layer_${i}`, model, i === 0 && options.virtualTokens ? null : 'hidden');
        sessions.push(session);
        layers.push({ session, graph });
        options.onCompile?.(i + 2, total);
      }
      return new TrainableModel(folder, options, place.cleanup, head, layers);
    } catch (err) {
      await Promise.all(sessions.map((s) => s.release()));
      place.cleanup();
      throw err;
    }
  }

  /** Every session it holds, head first. */
  get sessions(): readonly Session[] {
    return [this.head, ...this.layers.map((l) => l.session)];
  }

  async close(): Promise<void> {
    await Promise.all([this.head.release(), ...this.layers.map((l) => l.session.release())]);
    this.cleanup();
  }

  /**
   * RoPE tables and the additive attention mask, shaped to broadcast over heads: [1, 1, 1, T, *] shared by every row
   * (positions 0..T-1, causal), or [B, 1, 1, T, *] for packed rows (positions restart per sample; a token attends to
   * earlier tokens of its own sample only).
   */
  private positionFeeds(batch: MicroBatch): { cos: Tensor; sin: Tensor; mask: Tensor } {
    const { seqLen: T } = batch;
    const d = this.folder.spec.headDim;
    if (!batch.positionIds || !batch.segmentIds) {
      let tables = this.positionTables.get(T);
      if (!tables) {
        const { cos, sin } = ropeTables(this.folder.spec, T);
        const mask = new Float32Array(T * T);
        for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) mask[i * T + j] = -Infinity;
        tables = {
          cos: new Tensor('float32', cos, [1, 1, 1, T, d]),
          sin: new Tensor('float32', sin, [1, 1, 1, T, d]),
          mask: new Tensor('float32', mask, [1, 1, 1, T, T]),
        };
        this.positionTables.set(T, tables);
      }
      return tables;
    }
    const { positionIds, segmentIds, batchSize: B } = batch;
    const table = ropeTables(this.folder.spec, Math.max(...positionIds) + 1);
    const cos = new Float32Array(B * T * d);
    const sin = new Float32Array(B * T * d);
    const mask = new Float32Array(B * T * T).fill(-Infinity);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < T; i++) {
        const token = b * T + i;
        cos.set(table.cos.subarray(positionIds[token] * d, (positionIds[token] + 1) * d), token * d);
        sin.set(table.sin.subarray(positionIds[token] * d, (positionIds[token] + 1) * d), token * d);
        for (let j = 0; j <= i; j++) if (segmentIds[b * T + j] === segmentIds[token]) mask[(b * T + i) * T + j] = 0;
      }
    }
    return {
      cos: new Tensor('float32', cos, [B, 1, 1, T, d]),
      sin: new Tensor('float32', sin, [B, 1, 1, T, d]),
      mask: new Tensor('float32', mask, [B, 1, 1, T, T]),
    };
  }

  private loraFeeds(pairs: Map<TargetModule, LoraPair>, rank: number): Record<string, Tensor> {
    const feeds: Record<string, Tensor> = {};
    for (const [target, pair] of pairs) {
      feeds[`lora_A.${target}`] = new Tensor('float32', pair.a, [rank, pair.a.length / rank]);
      feeds[`lora_B.${target}`] = new Tensor('float32', pair.b, [pair.b.length / rank, rank]);
    }
    return feeds;
  }

  /** Dropout masks for one layer: regenerated from the same key for the forward and the backward call. */
  private maskFeeds(
    pairs: Map<TargetModule, LoraPair>,
    rank: number,
    tokens: number,
    dropoutKey: number,
    layer: number,
  ): Record<string, Tensor> {
    const feeds: Record<string, Tensor> = {};
    if (!this.options.lora.dropout) return feeds;
    let t = 0;
    for (const [target, pair] of pairs) {
      const width = pair.a.length / rank;
      const mask = new Float32Array(tokens * width);
      fillDropoutMask(mask, this.options.dropoutProbability, dropoutKey, layer * 16 + t++);
      feeds[`lora_mask.${target}`] = new Tensor('float32', mask, [tokens, width]);
    }
    return feeds;
  }

  private async embed(batch: MicroBatch, virtual?: VirtualTokens): Promise<Tensor> {
    const C = this.folder.spec.hiddenSize;
    const out = await runChecked(
      this.head,
      {
        embed: new Tensor('bool', [true], []),
        tokens: new Tensor('float32', readTensorRowsF32(this.embeddingTable, batch.inputIds), [
          batch.batchSize,
          batch.seqLen,
          C,
        ]),
        prefix: virtual
          ? new Tensor('float32', virtual.embeddings, [virtual.embeddings.length / C, C])
          : new Tensor('float32', new Float32Array(0), [0, C]),
        hidden: new Tensor('float32', new Float32Array(this.folder.spec.hiddenSize), [1, this.folder.spec.hiddenSize]),
        targets: new Tensor('int32', new Int32Array(1), [1, 1]),
        weight: new Tensor('float32', new Float32Array(1), [1, 1]),
        ...this.tables.get(this.head),
      },
      'embedding',
    );
    return out.out_0;
  }

  /**
   * Loss head. Each scored position carries weight 1 / lossTokens, so the returned loss is this micro-batch's share
   * of the step's mean and `dHidden` its gradient. Host-resident hidden states go through in row chunks, bounding the
   * [rows, V] logits; device-resident ones (WebGPU) in one call, so they never leave the device.
   */
  private async lossAndGradient(
    batch: MicroBatch,
    hidden: Tensor,
    lossTokens: number,
  ): Promise<{ loss: number; dHidden: Tensor }> {
    const { batchSize: B, seqLen: T } = batch;
    const C = this.folder.spec.hiddenSize;
    const n = B * T;
    const targets = new Int32Array(n);
    const weights = new Float32Array(n);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t + 1 < T; t++) {
        const label = batch.labels[b * T + t + 1];
        if (label >= 0) {
          targets[b * T + t] = label;
          weights[b * T + t] = 1 / lossTokens;
        }
      }
    }
    const run = (rowsHidden: Tensor, start: number, rows: number) =>
      runChecked(
        this.head,
        {
          embed: new Tensor('bool', [false], []),
          tokens: new Tensor('float32', new Float32Array(C), [1, 1, C]),
          prefix: new Tensor('float32', new Float32Array(0), [0, C]),
          hidden: rowsHidden,
          targets: new Tensor('int32', targets.subarray(start, start + rows), [rows, 1]),
          weight: new Tensor('float32', weights.subarray(start, start + rows), [rows, 1]),
          ...this.tables.get(this.head),
        },
        'loss head',
      );
    if (hidden.location === 'gpu-buffer') {
      const out = await run(hidden, 0, n);
      return { loss: (out.out_1.data as Float32Array)[0], dHidden: out.out_0 };
    }
    const hostHidden = hidden.data as Float32Array;
    const dHidden = new Float32Array(n * C);
    let loss = 0;
    const chunk = this.options.headChunkRows ?? HEAD_CHUNK_ROWS;
    for (let start = 0; start < n; start += chunk) {
      const rows = Math.min(chunk, n - start);
      const out = await run(
        new Tensor('float32', hostHidden.subarray(start * C, (start + rows) * C), [rows, C]),
        start,
        rows,
      );
      dHidden.set(out.out_0.data as Float32Array, start * C);
      loss += (out.out_1.data as Float32Array)[0];
    }
    return { loss, dHidden: new Tensor('float32', dHidden, [n, C]) };
  }

  /**
   * Forward and backward for one micro-batch. Adds d loss / d LoRA into `grads` (same layout as `lora`) and
   * returns this micro-batch's part of the loss, whose normalizer is `lossTokens` label tokens of the whole step.
   */
  async forwardBackward(
    tokens: MicroBatch,
    lora: LoraWeights,
    grads: LoraWeights,
    lossTokens: number,
    dropoutKey: number,
    virtual?: VirtualTokens,
  ): Promise<number> {
    const virtualCount = virtual ? virtual.embeddings.length / this.folder.spec.hiddenSize : 0;
    const batch = withVirtualTokens(tokens, virtualCount);
    const { batchSize: B, seqLen: T } = batch;
    const C = this.folder.spec.hiddenSize;
    const n = B * T;
    const rank = lora.settings.rank;
    const fixed = this.positionFeeds(batch);

    // Forward: keep each layer's input (the checkpoint), and its saved activations when checkpointing is off.
    const checkpoints: Tensor[] = [await this.embed(tokens, virtual)];
    const savedActivations: Tensor[][] = [];
    for (let i = 0; i < this.layers.length; i++) {
      const layer = this.layers[i];
      const feeds: Record<string, Tensor> = {
        forward: new Tensor('bool', [true], []),
        x: checkpoints[i],
        dy: this.unused,
        ...fixed,
        ...this.tables.get(layer.session),
        ...this.loraFeeds(lora.layers[i], rank),
        ...this.maskFeeds(lora.layers[i], rank, n, dropoutKey, i),
      };
      for (let s = 0; s < layer.session.inputNames.length; s++) {
        const name = layer.session.inputNames[s];
        if (name.startsWith('saved_')) feeds[name] = this.unused;
      }
      const out = await runChecked(layer.session, feeds, `layer ${i} forward`);
      checkpoints.push(out.hidden);
      savedActivations.push(Array.from({ length: layer.graph.forwardAux }, (_, k) => out[`aux_${k}`]));
    }

    const last = checkpoints.pop()!;
    const { loss, dHidden } = await this.lossAndGradient(batch, last, lossTokens);
    release(last);
    let dy = dHidden;

    for (let i = this.layers.length - 1; i >= 0; i--) {
      const layer = this.layers[i];
      const feeds: Record<string, Tensor> = {
        forward: new Tensor('bool', [false], []),
        x: checkpoints[i],
        dy,
        ...fixed,
        ...this.tables.get(layer.session),
        ...this.loraFeeds(lora.layers[i], rank),
        ...this.maskFeeds(lora.layers[i], rank, n, dropoutKey, i),
      };
      savedActivations[i].forEach((t, k) => (feeds[`saved_${k}`] = t));
      const out = await runChecked(layer.session, feeds, `layer ${i} backward`);
      savedActivations[i] = [];
      release(checkpoints.pop()!);
      release(dy);
      dy = out.hidden;
      if (i === 0 && virtual) {
        // d loss / d prompt: the input gradient at the virtual positions, summed over rows. dy [B * T, C].
        const dh0 = dy.data as Float32Array;
        const width = virtual.grad.length;
        for (let b = 0; b < B; b++) {
          const row = dh0.subarray(b * T * C, b * T * C + width);
          for (let e = 0; e < width; e++) virtual.grad[e] += row[e];
        }
      }
      layer.graph.gradNames.forEach((gradName, k) => {
        const [target, matrix] = gradName.split('.') as [TargetModule, 'A' | 'B'];
        const into = grads.layers[i].get(target)!;
        const sum = matrix === 'A' ? into.a : into.b;
        const add = out[`aux_${k}`].data as Float32Array;
        for (let e = 0; e < sum.length; e++) sum[e] += add[e];
      });
    }
    return loss;
  }

  /** Mean next-token loss of a micro-batch (no gradients kept). */
  async loss(
    tokenBatch: MicroBatch,
    lora: LoraWeights | null,
    virtual?: VirtualTokens,
  ): Promise<{ lossSum: number; tokens: number }> {
    const batch = withVirtualTokens(tokenBatch, virtual ? virtual.embeddings.length / this.folder.spec.hiddenSize : 0);
    const tokens = countLabelTokens(batch);
    if (tokens === 0) return { lossSum: 0, tokens: 0 };
    const rank = lora?.settings.rank ?? 0;
    const { cos, sin, mask } = this.positionFeeds(batch);
    let hidden = await this.embed(tokenBatch, virtual);
    for (let i = 0; i < this.layers.length; i++) {
      const layer = this.layers[i];
      const feeds: Record<string, Tensor> = {
        forward: new Tensor('bool', [true], []),
        x: hidden,
        dy: this.unused,
        cos,
        sin,
        mask,
        ...this.tables.get(layer.session),
      };
      if (lora) Object.assign(feeds, this.loraFeeds(lora.layers[i], rank));
      for (const name of layer.session.inputNames) {
        if (name.startsWith('saved_')) feeds[name] = this.unused;
        // Evaluation runs without dropout: a mask of ones.
        if (name.startsWith('lora_mask.')) {
          const width = feeds[name.replace('lora_mask.', 'lora_A.')].dims[1];
          feeds[name] = new Tensor('float32', new Float32Array(batch.batchSize * batch.seqLen * width).fill(1), [
            batch.batchSize * batch.seqLen,
            width,
          ]);
        }
      }
      const next = (await runChecked(layer.session, feeds, `layer ${i} forward`)).hidden;
      release(hidden);
      hidden = next;
    }
    const { loss, dHidden } = await this.lossAndGradient(batch, hidden, 1);
    release(hidden);
    release(dHidden);
    return { lossSum: loss, tokens };
  }
}
